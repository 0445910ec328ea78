#!/usr/bin/python3
"""The docs cannot drift from the schema: every configuration key and every
exporter flag that README.md and docs/*.md name exists.

- Keys: every backticked name in the first column of a Markdown table whose
  header starts with `| key |`. The section comes from the nearest heading
  above the table that names one (`## \\`libvirt\\``, `(\\`libvirt:\\` section)`,
  `collectors.<name>`). Each key is put into a configuration under its
  section with a deliberately wrong value (a mapping) and checked with the
  real binary's `--config.check`: a known key is refused for its value, an
  unknown one is refused as "unknown key". That uses the parser itself as
  the schema, with no list kept by hand.
- Flags: every `--section.name` flag mentioned (dotted: the exporter's own)
  appears in `vmtime_exporter --help`; `--collector.` and `--no-collector.`
  prefixes are checked with every collector name.
"""
import glob
import os
import re
import subprocess
import tempfile

import pytest

from exporter_proc import EXPORTER

SOURCE_DIR = os.environ.get("VMTIME_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SECTIONS = ("web", "libvirt", "chrony", "ntp", "guest_status", "history", "collectors",
            "scoring", "audit", "metrics", "remediation", "ntpd", "timesyncd", "host", "ptp",
            "groups")


def doc_files():
    return [os.path.join(SOURCE_DIR, "README.md")] + sorted(
        glob.glob(os.path.join(SOURCE_DIR, "docs", "*.md")))


def section_of(heading):
    for m in re.finditer(r"`([a-z_]+)(?::|\.<name>|`)", heading):
        if m.group(1) in SECTIONS:
            return m.group(1)
    return None


def documented_keys():
    """(file, line, section, key) for every key-table row."""
    rows = []
    for path in doc_files():
        section = None
        in_key_table = False
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith("#"):
                    section = section_of(line)
                    in_key_table = False
                    continue
                if re.match(r"^\|\s*key\s*\|", line):
                    in_key_table = True
                    continue
                if not line.startswith("|"):
                    in_key_table = False
                    continue
                if not in_key_table or re.match(r"^\|[-\s|]+\|\s*$", line):
                    continue
                first = line.split("|")[1]
                for key in re.findall(r"`([a-z_][a-z0-9_]*)`", first):
                    rows.append((os.path.relpath(path, SOURCE_DIR), lineno, section, key))
    return rows


def check_key(section, key):
    """Returns the --config.check message for `key` under `section`."""
    if section == "collectors":
        doc = f"collectors:\n  timex:\n    {key}: {{probe: 1}}\n"
    else:
        doc = f"{section}:\n  {key}: {{probe: 1}}\n"
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(doc)
        path = f.name
    try:
        r = subprocess.run([EXPORTER, "--config.file", path, "--config.check"],
                           capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(path)
    return r.returncode, r.stdout + r.stderr


def test_every_documented_key_exists():
    rows = documented_keys()
    assert len(rows) > 40, f"found only {len(rows)} documented keys: is the table format changed?"
    bad = []
    for path, line, section, key in rows:
        if section is None:
            bad.append(f"{path}:{line}: `{key}`: no configuration section named in the heading "
                       f"above the table")
            continue
        code, out = check_key(section, key)
        # 2: the probe value is the wrong type for the key; 0: the key takes
        # any mapping (remediation.include_metadata). Either way it exists.
        if code not in (0, 2) or "unknown key" in out:
            bad.append(f"{path}:{line}: `{section}.{key}` is not a configuration key "
                       f"(--config.check said: {out.strip()[:200]})")
    assert not bad, "\n".join(bad)


def test_a_wrong_key_would_be_caught():
    code, out = check_key("libvirt", "agent_timeout_s")
    assert code == 2 and "unknown key" in out, out


def help_text():
    r = subprocess.run([EXPORTER, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    return r.stdout


def test_every_documented_flag_exists():
    text = help_text()
    collectors = sorted(set(re.findall(r"--collector\.([a-z_]+)", text)))
    assert collectors, "no --collector.<name> flags in --help"
    bad = []
    for path in doc_files():
        with open(path, encoding="utf-8") as f:
            content = f.read()
        for flag in sorted(set(re.findall(r"(?<![\w-])--(?:no-)?[a-z]+\.[a-z_.-]*", content))):
            flag = flag.rstrip(".")
            if flag in ("--collector", "--no-collector") or flag.endswith(".<name>"):
                names = [f"{flag}.{c}" for c in collectors]
            else:
                names = [flag]
            for name in names:
                if not re.search(re.escape(name) + r"(?![\w.-])", text):
                    bad.append(f"{os.path.relpath(path, SOURCE_DIR)}: {name} is not in --help")
    assert not bad, "\n".join(bad)


def test_no_reference_to_documents_outside_the_repository():
    """The repository is self-contained: docs/architecture.md describes the
    design; nothing points at a design document or folder it does not hold."""
    r = subprocess.run(["git", "-C", SOURCE_DIR, "grep", "-n", "-I", "-E",
                        r"DESIGN\.md|\.\./shared/", "--", ".", ":!tests/e2e/test_docs_keys.py"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode in (0, 1), r.stderr
    assert r.stdout == "", "references to documents outside the repository:\n" + r.stdout
