#!/usr/bin/python3
"""Zabbix integration (dashboards/zabbix/): the template, the external check
program vmtime_zabbix_check, and the agent UserParameters, with real Zabbix
parts from Debian.

- Template: regenerating it from make_template.py gives the committed YAML;
  6.0 export structure, UUIDv4s unique; every item/prototype key is one the
  check supports (external) or a dependent item whose Prometheus patterns
  name contract metrics (HTTP); every trigger expression references existing
  keys of its own template; every user macro is defined; value maps exist.
- Live: the real exporter against libvirt's test driver (test:///default:
  one running domain "test" with a frozen clock; enough for discovery and
  values); or, with VMTIME_E2E_LAB=1, against a lab guest.
  * every EXTERNAL key of the template is run the way the Zabbix server runs
    external checks (ExternalScripts dir, `sh -c` with single-quoted
    arguments from the key) and must yield a value of the item's type (or,
    for values the exporter cannot know yet, the documented exit code 5);
  * every HTTP-agent item/prototype's preprocessing is applied to the real
    /metrics: Prometheus patterns by this test (Zabbix's PROMETHEUS_PATTERN
    and PROMETHEUS_TO_JSON semantics, subset used by the template), the
    JAVASCRIPT steps by Zabbix's own engine (/usr/bin/zabbix_js);
  * zabbix_agentd (private config, -f, 127.0.0.1:<free port>) with the
    UserParameters of userparameter_vmtime.conf, queried with zabbix_get;
  * error paths: unreachable exporter, unknown VM, unknown key, bad JSON,
    HTTP error, a server that accepts and never answers (timeout).
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import http.server

import pytest
import yaml

import integrations_support as sup

SRC = sup.SRC
ZDIR = os.path.join(SRC, "dashboards", "zabbix")
TEMPLATE = os.path.join(ZDIR, "template_vmtime_exporter.yaml")
USERPARAMS = os.path.join(ZDIR, "userparameter_vmtime.conf")
CHECK_NAME = "vmtime_zabbix_check"


def check_binary():
    candidates = []
    if sup.BIN:
        candidates.append(os.path.join(sup.BIN, "dashboards", "zabbix", CHECK_NAME))
    exe = os.environ.get("VMTIME_EXPORTER")
    if exe:  # <build>/exporter/vmtime_exporter -> <build>/dashboards/zabbix/...
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(exe)), "dashboards", "zabbix",
                                       CHECK_NAME))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    pytest.fail(f"{CHECK_NAME} not built (looked in {candidates}); build target {CHECK_NAME}")


def template_doc():
    return yaml.safe_load(open(TEMPLATE))["zabbix_export"]


def templates():
    return {t["template"]: t for t in template_doc()["templates"]}


def all_items(t):
    """(kind, item) for items and item prototypes of template t."""
    out = [("item", i) for i in t.get("items", [])]
    for rule in t.get("discovery_rules", []):
        out.append(("rule", rule))
        out += [("prototype", i) for i in rule.get("item_prototypes", [])]
    return out


def all_triggers(tname):
    doc = template_doc()
    t = templates()[tname]
    out = [tr for tr in doc.get("triggers", []) if f"/{tname}/" in tr["expression"]]
    for kind, i in all_items(t):  # items, prototypes and the rules themselves
        out += i.get("triggers", []) + i.get("trigger_prototypes", [])
    return out


def parse_key(key):
    """Zabbix item key -> (name, [params]); quoted params unescaped."""
    m = re.match(r"^([\w.\-]+)(?:\[(.*)\])?$", key, re.S)
    assert m, f"malformed key {key!r}"
    name, body = m.group(1), m.group(2)
    if body is None:
        return name, []
    params, i = [], 0
    while True:
        while i < len(body) and body[i] == " ":
            i += 1
        if i < len(body) and body[i] == '"':
            j, val = i + 1, ""
            while j < len(body) and body[j] != '"':
                if body[j] == "\\" and j + 1 < len(body) and body[j + 1] == '"':
                    j += 1
                val += body[j]
                j += 1
            assert j < len(body), f"unterminated quote in {key!r}"
            i = j + 1
            while i < len(body) and body[i] == " ":
                i += 1
        else:
            j = body.find(",", i)
            j = len(body) if j < 0 else j
            val = body[i:j].rstrip()
            i = j
        params.append(val)
        if i >= len(body):
            return name, params
        assert body[i] == ",", f"junk after parameter in {key!r}"
        i += 1


def check_known_keys():
    r = subprocess.run([check_binary(), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    m = re.search(r"^keys: (.*)$", r.stdout, re.M)
    assert m, r.stdout
    return [k.strip() for k in m.group(1).split(",")]


def key_supported(key, known):
    if key in known:
        return True
    for k in known:
        if k.endswith(".<name>") and key.startswith(k[: -len("<name>")]) and len(key) > len(k) - 6:
            return True
    return False


# --- static template checks ---------------------------------------------


def test_template_is_generated_from_make_template(tmp_path):
    out = tmp_path / "t.yaml"
    r = subprocess.run(["/usr/bin/python3", os.path.join(ZDIR, "make_template.py"), str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == open(TEMPLATE).read(), \
        "template_vmtime_exporter.yaml differs from make_template.py output: re-run the script"


def test_template_structure_and_uuids():
    doc = template_doc()
    assert doc["version"] == "6.0"
    assert doc["groups"] and all(g["name"] for g in doc["groups"])
    uuids = []

    def walk(x):
        if isinstance(x, dict):
            if "uuid" in x:
                uuids.append(x["uuid"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(doc)
    assert uuids
    for u in uuids:
        assert re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", u), f"not a UUIDv4: {u}"
    assert len(uuids) == len(set(uuids)), "duplicate UUIDs"
    names = set(templates())
    assert names == {"vmtime exporter by HTTP", "vmtime exporter by external check"}
    group_names = {g["name"] for g in doc["groups"]}
    for t in templates().values():
        assert {g["name"] for g in t["groups"]} <= group_names


def test_template_keys_triggers_macros_valuemaps():
    known = check_known_keys()
    contract = set(re.findall(r"`(vmtime_[a-z_]+)`", open(os.path.join(SRC, "docs", "metrics.md")).read()))
    for tname, t in templates().items():
        macros = {m["macro"] for m in t.get("macros", [])}
        valuemaps = {v["name"] for v in t.get("valuemaps", [])}
        keys = set()
        for kind, item in all_items(t):
            key = item["key"]
            assert key not in keys, f"{tname}: duplicate key {key}"
            keys.add(key)
            if item.get("valuemap"):
                assert item["valuemap"]["name"] in valuemaps, f"{tname} {key}: unknown value map"
            if item["type"] == "EXTERNAL":
                name, params = parse_key(key)
                assert name == CHECK_NAME, key
                if kind == "rule":
                    assert params[1:] == ["discovery"], key
                elif kind == "item":  # the host item: the discovery's VM count, own --timeout
                    assert params[:2] == ["--timeout", "3"] and params[3:] == ["discovery"], key
                else:
                    assert len(params) == 3, key
                    assert key_supported(params[2], known), f"{tname}: check has no key {params[2]!r}"
            elif item["type"] == "DEPENDENT":
                master = item["master_item"]["key"]
                assert master in {i["key"] for i in t.get("items", [])}, f"{key}: master {master} missing"
                for step in item.get("preprocessing", []):
                    if step["type"] in ("PROMETHEUS_PATTERN", "PROMETHEUS_TO_JSON"):
                        pattern = step["parameters"][0]
                        names = re.findall(r"(?<![\w:])(vmtime_[a-z_]+)", pattern)
                        assert names, f"{key}: pattern {pattern!r} names no metric"
                        for n in names:
                            if n.endswith("_"):  # a regex prefix such as vmtime_vm_clock_
                                assert any(c.startswith(n) for c in contract), n
                            else:
                                assert n in contract, f"{tname} {key}: {n} not in docs/metrics.md"
            elif item["type"] == "HTTP_AGENT":
                assert item["url"].startswith("{$VMTIME.URL}/"), item["url"]
            else:
                pytest.fail(f"{tname} {key}: unexpected item type {item['type']}")
        # Triggers reference only keys of this template.
        triggers = all_triggers(tname)
        assert triggers, f"{tname} has no triggers"
        for tr in triggers:
            refs = re.findall(r"/([^/]+)/((?:[^,()\"\[]|\"(?:[^\"\\]|\\.)*\"|\[(?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*\])+)",
                              tr["expression"])
            assert refs, f"{tname}: trigger {tr['name']} references no item"
            for host, key in refs:
                assert host == tname, f"trigger {tr['name']} references template {host}"
                assert key in keys, f"{tname}: trigger {tr['name']} references unknown key {key}"
            for dep in tr.get("dependencies", []):
                assert dep["name"] in {x["name"] for x in triggers}, dep
        # Every user macro used anywhere is defined on the template.
        text = yaml.safe_dump(t) + yaml.safe_dump(triggers)
        for m in set(re.findall(r"\{\$[A-Z0-9_.]+\}", text)):
            assert m in macros, f"{tname}: macro {m} used but not defined"
        defaults = {m["macro"]: m["value"] for m in t["macros"]}
        # Thresholds equal the exporter's defaults (exporter/config, scoring/params.h).
        assert defaults["{$VMTIME.OFFSET.WARN}"] == "30"
        assert defaults["{$VMTIME.OFFSET.CRIT}"] == "300"
        # Bands are the exporter's verdict (the band item), never score
        # thresholds repeated in the template.
        assert not [m for m in defaults if "SCORE" in m], defaults
        band_key = next(i["key"] for _, i in all_items(t) if i["name"].endswith(": health band"))
        band_triggers = [tr for tr in triggers if band_key in tr["expression"]]
        assert {tr["priority"] for tr in band_triggers} == {"HIGH", "WARNING"}, band_triggers
        assert not [tr for tr in triggers if "score" in tr["expression"] and "<" in tr["expression"]]


def test_template_follows_the_host_model():
    """Issue 12: host sync state from vmtime_host_synchronised only (with its
    source); the hypervisor trigger suppresses (is a dependency of) only
    the VM-vs-UTC offset triggers; the resumed_behind trigger and the
    renamed guest metric are there."""
    text = open(TEMPLATE).read()
    for banned in ("vmtime_host_timex_sync_status", "vmtime_host_timex_status",
                   "vmtime_host_chrony_tracking_leap_status", "vmtime_vm_guest_synchronized",
                   "guest_synchronized"):
        assert banned not in text, banned
    http_name, ext_name = "vmtime exporter by HTTP", "vmtime exporter by external check"
    http = templates()[http_name]
    patterns = {i["key"]: i["preprocessing"][0]["parameters"] for i in http["items"] if i.get("preprocessing")}
    assert patterns["vmtime.host.synchronised"][:2] == ["vmtime_host_synchronised", "value"]
    assert patterns["vmtime.host.synchronised.source"] == ["vmtime_host_synchronised", "label", "source"]
    triggers = all_triggers(http_name)
    host = [tr for tr in triggers if "vmtime.host.synchronised" in tr["expression"]]
    assert len(host) == 1, host
    dependants = {tr["name"] for tr in triggers
                  if any(d["name"] == host[0]["name"] for d in tr.get("dependencies", []))}
    assert dependants == {"VM {#VM.NAME}: clock offset vs UTC beyond {$VMTIME.OFFSET.WARN}s",
                          "VM {#VM.NAME}: clock offset vs UTC beyond {$VMTIME.OFFSET.CRIT}s"}, dependants
    for tname in (http_name, ext_name):
        triggers = all_triggers(tname)
        names = {tr["name"] for tr in triggers}
        assert "VM {#VM.NAME}: behind since a pause, restore or migration" in names, tname
        host_off = [tr for tr in triggers if tr["name"].startswith("VM {#VM.NAME}: clock offset vs host")]
        assert len(host_off) == 2, tname
        for tr in host_off:  # never suppressed by the host's sync state (only by a down exporter)
            assert all(d["name"].startswith("VM {#VM.NAME}: clock offset vs host")
                       or d["name"] == "vmtime exporter unreachable"
                       for d in tr.get("dependencies", [])), tr
        items = [i for _, i in all_items(templates()[tname])]
        assert any(i["name"].endswith("guest time daemon synchronised") for i in items), tname


def test_lld_macros_come_from_discovery():
    for tname, t in templates().items():
        rule = t["discovery_rules"][0]
        if rule["type"] == "DEPENDENT":
            provided = {p["lld_macro"] for p in rule["lld_macro_paths"]}
        else:
            provided = {"{#VM.NAME}", "{#VM.UUID}", "{#VM.STATE}"}  # the check's discovery output
        text = yaml.safe_dump(rule)
        for m in set(re.findall(r"\{#[A-Z0-9_.]+\}", text)):
            assert m in provided, f"{tname}: LLD macro {m} not provided by discovery"


# --- Prometheus preprocessing (subset used by the template) ---------------

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
LABEL_RE = re.compile(r'([a-zA-Z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    out, types, helps = [], {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"unparsable exposition line {line!r}"
        labels = {k: v.encode().decode("unicode_escape") for k, v in LABEL_RE.findall(m.group(3) or "")}
        out.append({"name": m.group(1), "labels": labels, "value": m.group(4), "line_raw": line})
    for s in out:
        s["type"] = types.get(s["name"], "untyped")
        s["help"] = helps.get(s["name"], "")
    return out


def select(samples, pattern):
    """Zabbix Prometheus pattern: name, {labels}, label ops = != =~ !~,
    __name__ selector, and an optional trailing `== <number>`."""
    m = re.match(r"^\s*([a-zA-Z_:][\w:]*)?\s*(\{(.*)\})?\s*(==\s*(\S+))?\s*$", pattern)
    assert m, f"unsupported pattern {pattern!r}"
    name, body, cmp_value = m.group(1), m.group(3) or "", m.group(5)
    conds = re.findall(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', body)
    out = []
    for s in samples:
        if name and s["name"] != name:
            continue
        ok = True
        for label, op, value in conds:
            have = s["name"] if label == "__name__" else s["labels"].get(label, "")
            if op == "=":
                ok = have == value
            elif op == "!=":
                ok = have != value
            elif op == "=~":
                ok = re.fullmatch(value, have) is not None
            else:
                ok = re.fullmatch(value, have) is None
            if not ok:
                break
        if ok and cmp_value is not None:
            ok = float(s["value"]) == float(cmp_value)
        if ok:
            out.append(s)
    return out


class StepError(Exception):
    pass


def run_js(script, value, tmpdir):
    path = os.path.join(tmpdir, "step.js")
    with open(path, "w") as f:
        f.write(script)
    inp = os.path.join(tmpdir, "step.in")
    with open(inp, "w") as f:
        f.write(value)
    r = subprocess.run(["zabbix_js", "-s", path, "-i", inp, "-t", "5"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise StepError(f"JavaScript: {r.stderr.strip() or r.stdout.strip()}")
    out = r.stdout
    # zabbix_js prints a newline, the result, a newline.
    if out.startswith("\n"):
        out = out[1:]
    return out[:-1] if out.endswith("\n") else out


def preprocess(steps, value, samples, tmpdir):
    """Applies the template's preprocessing steps; returns the value or None
    when a step failed and its error handler discards the value."""
    for step in steps:
        typ, params = step["type"], step.get("parameters", [])
        try:
            if typ == "PROMETHEUS_PATTERN":
                rows = select(samples, params[0])
                if not rows:
                    raise StepError(f"no data matching {params[0]!r}")
                if params[1] == "value":
                    if len(rows) > 1:
                        raise StepError(f"{params[0]!r} matches {len(rows)} series")
                    value = rows[0]["value"]
                elif params[1] == "label":
                    value = rows[0]["labels"].get(params[2], "")
                elif params[1] == "function":
                    vals = [float(r["value"]) for r in rows]
                    value = {"sum": sum(vals), "min": min(vals), "max": max(vals),
                             "avg": sum(vals) / len(vals), "count": len(vals)}[params[2]]
                    value = str(value)
                else:
                    raise AssertionError(f"unknown PROMETHEUS_PATTERN output {params[1]}")
            elif typ == "PROMETHEUS_TO_JSON":
                rows = select(samples, params[0])
                value = json.dumps([{k: r[k] for k in ("name", "value", "line_raw", "labels", "type", "help")}
                                    for r in rows])
            elif typ == "JAVASCRIPT":
                value = run_js(params[0], value, tmpdir)
            elif typ == "DISCARD_UNCHANGED_HEARTBEAT":
                pass
            else:
                raise AssertionError(f"test does not implement preprocessing {typ}")
        except StepError:
            handler = step.get("error_handler", "ORIGINAL_ERROR")
            if handler == "DISCARD_VALUE":
                return None
            if handler == "CUSTOM_VALUE":
                value = step["error_handler_params"]
                continue
            raise
    return value


def check_type(value, vtype, what):
    if vtype == "FLOAT":
        float(value)
    elif vtype == "UNSIGNED":
        assert re.fullmatch(r"\d+", str(value).split(".")[0]) and float(value) >= 0, f"{what}: {value!r}"
    elif vtype in ("CHAR", "TEXT"):
        assert isinstance(value, str), what
        if vtype == "CHAR":
            assert len(value) <= 255, what


# --- live checks ---------------------------------------------------------


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="vmtime-zabbix-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def exporter(workdir):
    """(base URL, /api/v1/targets document) of a real exporter."""
    with sup.processes() as procs:
        if os.environ.get("VMTIME_E2E_LAB") == "1":
            vmlab = sup.lab_module()
            lab_dir = os.path.join(workdir, "lab")
            with vmlab.Lab(lab_dir, guests=[vmlab.GuestSpec("g1")], boot_timeout=300) as lab:
                yield from _exporter_for(procs, workdir, lab.uri, "g1")
        else:
            yield from _exporter_for(procs, workdir, "test:///default", "test")


def _exporter_for(procs, workdir, uri, vm_name):
    _, base = sup.start_exporter(procs, workdir, libvirt_uri=uri)

    def sampled():
        doc = json.loads(sup.http_get(base + "/api/v1/targets")[1])
        vms = [v for v in doc["vms"] if v["domain"] == vm_name]
        # Two samples: stopped/drift need more than one.
        return doc if vms and vms[0]["offset_seconds"] is not None else None
    sup.wait_until(sampled, 60, f"the exporter to sample {vm_name}")
    sup.wait_until(lambda: sup.http_get(base + "/readyz")[0] == 200, 30, "/readyz")
    import time
    time.sleep(2.5)  # a couple more 1 s rounds (stopped needs two samples)
    doc = json.loads(sup.http_get(base + "/api/v1/targets")[1])
    yield base, doc


def external_scripts_dir(workdir):
    d = os.path.join(workdir, "externalscripts")
    os.makedirs(d, exist_ok=True)
    link = os.path.join(d, CHECK_NAME)
    if not os.path.exists(link):
        os.symlink(check_binary(), link)
    return d


def run_external(workdir, key, macros, timeout=15):
    """Runs an EXTERNAL item key like the Zabbix server: the script from
    ExternalScripts, each key parameter single-quoted, through sh -c."""
    for k, v in macros.items():
        key = key.replace(k, v)
    name, params = parse_key(key)
    cmd = " ".join(shlex.quote(x) for x in [os.path.join(external_scripts_dir(workdir), name), *params])
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=timeout)


def test_external_check_template_keys_live(exporter, workdir):
    base, doc = exporter
    t = templates()["vmtime exporter by external check"]
    rule = t["discovery_rules"][0]
    r = run_external(workdir, rule["key"], {"{$VMTIME.URL}": base})
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["{#VM.NAME}"] for row in rows] == [v["domain"] for v in doc["vms"]]
    assert [row["{#VM.UUID}"] for row in rows] == [v["uuid"] for v in doc["vms"]]
    assert rows, "no VM discovered"
    for row in rows:
        vm = next(v for v in doc["vms"] if v["uuid"] == row["{#VM.UUID}"])
        macros = {"{$VMTIME.URL}": base, **row}
        values = {}
        for proto in rule["item_prototypes"]:
            r = run_external(workdir, proto["key"], macros)
            what = f"{proto['key']} for {row['{#VM.NAME}']}"
            if r.returncode == 5:  # documented: value unknown now (null in the API)
                assert "unknown now" in r.stderr, r.stderr
                continue
            assert r.returncode == 0, f"{what}: exit {r.returncode}: {r.stderr}"
            value = r.stdout.rstrip("\n")
            check_type(value, proto["value_type"], what)
            values[parse_key(proto["key"])[1][2]] = value
        # Values agree with the API document.
        assert float(values["score"]) == pytest.approx(vm["health_score"], abs=1.0)
        assert values["state"] == vm["state"]
        assert values["agent_up"] == ("1" if vm["agent_up"] else "0")
        if vm["offset_seconds"] is not None:
            # A stopped clock (the test driver's) falls behind 1 s per second
            # since the document was taken: allow for that time too.
            late = time.time() - doc["generated_at_unix"] if vm["clock_stopped"] else 0.0
            assert float(values["offset"]) == pytest.approx(vm["offset_seconds"], abs=5.0 + late)
            assert "effective_offset" in values


def test_http_template_preprocessing_live(exporter, workdir):
    base, doc = exporter
    t = templates()["vmtime exporter by HTTP"]
    metrics = sup.http_get(base + "/metrics")[1]
    samples = parse_exposition(metrics)
    tmp = tempfile.mkdtemp(dir=workdir)
    for item in t["items"]:
        if item["type"] != "DEPENDENT":
            continue
        value = preprocess(item["preprocessing"], metrics, samples, tmp)
        if value is not None:
            check_type(value, item["value_type"], item["key"])
    assert preprocess(
        [s for s in t["items"] if s["key"] == "vmtime.libvirt.up"][0]["preprocessing"],
        metrics, samples, tmp) == "1"
    rule = t["discovery_rules"][0]
    lld = json.loads(preprocess(rule["preprocessing"], metrics, samples, tmp))
    assert sorted(r["labels"]["domain"] for r in lld) == sorted(v["domain"] for v in doc["vms"])
    for row in lld:
        macros = {}
        for p in rule["lld_macro_paths"]:
            assert p["path"].startswith("$.labels."), p
            macros[p["lld_macro"]] = row["labels"][p["path"][len("$.labels."):]]
        vm = next(v for v in doc["vms"] if v["uuid"] == macros["{#VM.UUID}"])
        got = {}
        for proto in rule["item_prototypes"]:
            steps = json.loads(json.dumps(proto["preprocessing"]))
            for s in steps:
                s["parameters"] = [p.replace("{#VM.UUID}", macros["{#VM.UUID}"]) for p in s["parameters"]]
            optional = any(s.get("error_handler") == "DISCARD_VALUE" for s in steps)
            try:
                value = preprocess(steps, metrics, samples, tmp)
            except StepError as e:
                pytest.fail(f"{proto['key']} for {macros['{#VM.NAME}']}: {e}")
            if value is None:
                assert optional, proto["key"]
                continue
            check_type(value, proto["value_type"], proto["key"])
            got[proto["key"].split("[")[0]] = value
        assert float(got["vmtime.vm.score"]) == pytest.approx(vm["health_score"], abs=1.0)
        assert got["vmtime.vm.state"] == vm["state"]
        expected_reasons = ",".join(sorted(vm["reasons"]))
        assert got["vmtime.vm.reasons"] == expected_reasons
        if vm["offset_seconds"] is not None:
            eff = vm["utc_offset_seconds"] if vm["utc_offset_seconds"] is not None else vm["offset_seconds"]
            assert float(got["vmtime.vm.offset.effective"]) == pytest.approx(eff, abs=5.0)


def test_zabbix_agentd_userparameters(exporter, workdir):
    base, doc = exporter
    vm = doc["vms"][0]
    d = os.path.join(workdir, "agentd")
    os.makedirs(d, exist_ok=True)
    # The shipped UserParameter lines, with the check's install path
    # replaced by the build tree's binary.
    up = open(USERPARAMS).read().replace("/usr/lib/zabbix/externalscripts/" + CHECK_NAME, check_binary())
    up_path = os.path.join(d, "userparameter_vmtime.conf")
    with open(up_path, "w") as f:
        f.write(up)
    port = sup.free_port_in(20000, 32767)  # zabbix_agentd accepts 1024..32767 only
    conf = os.path.join(d, "zabbix_agentd.conf")
    with open(conf, "w") as f:
        f.write(f"LogType=file\nLogFile={d}/zabbix_agentd.log\nPidFile={d}/zabbix_agentd.pid\n"
                f"ListenIP=127.0.0.1\nListenPort={port}\nServer=127.0.0.1\nHostname=vmtime-e2e\n"
                f"AllowRoot=1\nStartAgents=2\nTimeout=10\nInclude={up_path}\n")
    with sup.processes() as procs:
        agent = sup.Proc("zabbix_agentd", ["/usr/sbin/zabbix_agentd", "-f", "-c", conf], d)
        procs.append(agent)

        def zget(key):
            r = subprocess.run(["zabbix_get", "-s", "127.0.0.1", "-p", str(port), "-t", "15", "-k", key],
                               capture_output=True, text=True, timeout=30)
            return r.returncode, r.stdout.strip(), r.stderr.strip()

        def listening():
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        try:
            sup.wait_until(listening, 30, "zabbix_agentd to listen")
        except TimeoutError as e:
            log = open(os.path.join(d, "zabbix_agentd.log")).read() if os.path.exists(
                os.path.join(d, "zabbix_agentd.log")) else ""
            raise TimeoutError(f"{e}\n{agent.tail()}\n{log[-2000:]}") from None
        rc, out, err = zget(f"vmtime.discovery[{base}]")
        assert rc == 0, err
        rows = json.loads(out)
        assert {r["{#VM.NAME}"] for r in rows} == {v["domain"] for v in doc["vms"]}
        rc, out, err = zget(f"vmtime.vm[{base},{vm['domain']},score]")
        assert rc == 0, err
        assert float(out) == pytest.approx(vm["health_score"], abs=1.0)
        rc, out, err = zget(f"vmtime.vm[{base},{vm['uuid']},state]")
        assert rc == 0 and out == vm["state"], (out, err)
        rc, out, err = zget(f"vmtime.vm[{base},{vm['domain']},agent_up]")
        assert rc == 0 and out in ("0", "1"), (out, err)
        # An unknown VM: the check's message reaches Zabbix, not a number.
        rc, out, err = zget(f"vmtime.vm[{base},no-such-vm,score]")
        assert "no VM named or with UUID 'no-such-vm'" in out + err, (out, err)
        with pytest.raises(ValueError):
            float(out)


# --- error paths of the check ----------------------------------------------


def run_check(*args, timeout=20):
    return subprocess.run([check_binary(), *args], capture_output=True, text=True, timeout=timeout)


class FakeServer:
    """127.0.0.1 server answering every GET with a fixed status and body,
    or (hang=True) accepting connections and never answering."""

    def __init__(self, status=200, body=b"", hang=False):
        self.hang = hang
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.status, self.body = status, body
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            if self.hang:
                continue
            c.settimeout(2)
            try:
                c.recv(65536)
                c.sendall(b"HTTP/1.0 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                          % (self.status, len(self.body)) + self.body)
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_check_errors_are_clear_and_non_zero(exporter):
    base, _ = exporter
    port = sup.free_port()  # nothing listens there
    r = run_check(f"http://127.0.0.1:{port}", "discovery")
    assert r.returncode == 2 and "cannot reach exporter" in r.stderr and "refused" in r.stderr, r.stderr
    r = run_check(base, "no-such-vm", "score")
    assert r.returncode == 4 and "no-such-vm" in r.stderr, r.stderr
    r = run_check(base, "test", "bogus")
    assert r.returncode == 1 and "unknown key 'bogus'" in r.stderr, r.stderr
    r = run_check(base)
    assert r.returncode == 1 and "usage" in r.stderr, r.stderr
    r = run_check("ftp://127.0.0.1/", "discovery")
    assert r.returncode == 1 and "expected http://" in r.stderr, r.stderr
    assert r.stdout == ""
    for body, code, text in ((b"{not json", 3, "not valid JSON"), (b'{"vms": 3}', 3, '"vms"'),
                             (b"", 3, "not valid JSON")):
        s = FakeServer(body=body)
        try:
            r = run_check(f"http://127.0.0.1:{s.port}", "discovery")
            assert r.returncode == code and text in r.stderr, (body, r.returncode, r.stderr)
        finally:
            s.close()
    s = FakeServer(status=401, body=b"Unauthorized")
    try:
        r = run_check(f"http://127.0.0.1:{s.port}", "discovery")
        assert r.returncode == 2 and "HTTP 401" in r.stderr, r.stderr
    finally:
        s.close()


def test_check_times_out_on_a_silent_server():
    s = FakeServer(hang=True)
    try:
        r = run_check("--timeout", "1", f"http://127.0.0.1:{s.port}", "discovery", timeout=20)
        assert r.returncode == 2, r
        assert "timed out" in r.stderr, r.stderr
    finally:
        s.close()
