#!/usr/bin/python3
"""HTTPS end to end, on loopback, with certificates the test makes with the
openssl tool in a temporary directory: curl --cacert, openssl s_client with
TLS 1.2 and 1.3, mutual TLS (no, wrong and right client certificate),
certificates re-read on SIGHUP (and a bad one refused), and a real
Prometheus scraping over TLS with basic auth. Runs in about 15 s."""
import crypt
import os
import signal
import subprocess

import pytest

from exporter_proc import Exporter
from integrations_support import prom_query, processes, start_prometheus, wait_until

BASE_ARGS = ["--no-collector.chrony", "--no-collector.ntp", "--no-collector.libvirt"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "1", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            cwd=d)


def make_cert(d, ca, name, server):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
            f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" if server
                else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    make_ca(d, "server-ca")
    make_ca(d, "client-ca")
    make_ca(d, "rogue-ca")
    make_cert(d, "server-ca", "server", server=True)
    make_cert(d, "server-ca", "server2", server=True)
    make_cert(d, "client-ca", "client", server=False)
    make_cert(d, "rogue-ca", "rogue", server=False)
    return d


def write_web(path, tls, users=None):
    lines = ["tls_server_config:"] + [f"  {k}: {v}" for k, v in tls.items()]
    if users:
        lines.append("basic_auth_users:")
        lines += [f"  {u}: '{crypt.crypt(p, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))}'"
                  for u, p in users.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def curl(url, *args):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", *args,
                        url], capture_output=True, text=True, timeout=20)
    body, _, code = r.stdout.rpartition("\n")
    return r.returncode, int(code or 0), body, r.stderr


def s_client(port, *args, request=""):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *args],
                       input=request, capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout + r.stderr


def test_https_curl_and_tls_versions(pki, tmp_path):
    web = tmp_path / "web.yml"
    write_web(web, {"cert_file": f"{pki}/server.crt", "key_file": f"{pki}/server.key"})
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        url = f"https://127.0.0.1:{e.port}"
        rc, code, body, err = curl(url + "/healthz", "--cacert", f"{pki}/server-ca.crt")
        assert (rc, code, body) == (0, 200, "ok\n"), err
        rc, code, _, _ = curl(url + "/metrics", "--cacert", f"{pki}/server-ca.crt")
        assert (rc, code) == (0, 200)
        rc, _, _, err = curl(url + "/healthz")  # the system CAs do not know ours
        assert rc == 60, err
        rc, code, _, _ = curl(f"http://127.0.0.1:{e.port}/healthz")  # plain HTTP is not served
        assert code != 200
        for flag, proto in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            rc, out = s_client(e.port, flag, "-CAfile", f"{pki}/server-ca.crt",
                               "-verify_return_error")
            assert rc == 0, out
            assert f"Protocol version: {proto}" in out, out
            assert "Verification: OK" in out, out
        rc, out = s_client(e.port, "-tls1_1")
        assert rc != 0, out  # below min_version (TLS 1.2)
        # No session resumption: a saved TLS 1.2 session is not reused.
        sess = str(tmp_path / "session.pem")
        for arg in ("-sess_out", "-sess_in"):
            r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{e.port}",
                                "-tls1_2", arg, sess], input="", capture_output=True, text=True,
                               timeout=20)
            assert "New, TLSv1.2" in r.stdout and "Reused" not in r.stdout, r.stdout

    write_web(web, {"cert_file": f"{pki}/server.crt", "key_file": f"{pki}/server.key",
                    "min_version": "TLS13"})
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        assert s_client(e.port, "-tls1_3")[0] == 0
        rc, out = s_client(e.port, "-tls1_2")
        assert rc != 0, out

    write_web(web, {"cert_file": f"{pki}/server.crt", "key_file": f"{pki}/server.key",
                    "max_version": "TLS12",
                    "cipher_suites": "[TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]"})
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        rc, out = s_client(e.port)
        assert rc == 0, out
        assert "Protocol version: TLSv1.2" in out and "ECDHE-ECDSA-AES128-GCM-SHA256" in out, out


def test_mutual_tls(pki, tmp_path):
    web = tmp_path / "web.yml"
    write_web(web, {"cert_file": f"{pki}/server.crt", "key_file": f"{pki}/server.key",
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "client_ca_file": f"{pki}/client-ca.crt"})
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        url = f"https://127.0.0.1:{e.port}/metrics"
        ca = ("--cacert", f"{pki}/server-ca.crt")
        rc, code, _, err = curl(url, *ca)
        assert rc != 0 and code == 0, "no client certificate must be refused"
        rc, code, _, err = curl(url, *ca, "--cert", f"{pki}/rogue.crt", "--key", f"{pki}/rogue.key")
        assert rc != 0 and code == 0, "a certificate from another CA must be refused"
        rc, code, _, err = curl(url, *ca, "--cert", f"{pki}/client.crt", "--key", f"{pki}/client.key")
        assert (rc, code) == (0, 200), err
        # openssl s_client, both versions: the right certificate gets an
        # answer, a wrong one an alert and none (TLS 1.3 clients see the
        # alert only when they read, hence the request).
        request = "GET /healthz HTTP/1.0\r\n\r\n"
        for flag in ("-tls1_2", "-tls1_3"):
            rc, out = s_client(e.port, flag, "-ign_eof", "-cert", f"{pki}/client.crt", "-key",
                               f"{pki}/client.key", request=request)
            assert "HTTP/1.1 200 OK" in out, out
            rc, out = s_client(e.port, flag, "-ign_eof", "-cert", f"{pki}/rogue.crt", "-key",
                               f"{pki}/rogue.key", request=request)
            assert "HTTP/1.1" not in out, out
            assert "alert" in out.lower(), out

    write_web(web, {"cert_file": f"{pki}/server.crt", "key_file": f"{pki}/server.key",
                    "client_auth_type": "VerifyClientCertIfGiven",
                    "client_ca_file": f"{pki}/client-ca.crt"})
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        url = f"https://127.0.0.1:{e.port}/healthz"
        ca = ("--cacert", f"{pki}/server-ca.crt")
        assert curl(url, *ca)[:2] == (0, 200)  # none given: fine
        assert curl(url, *ca, "--cert", f"{pki}/rogue.crt", "--key", f"{pki}/rogue.key")[0] != 0


def test_certificates_are_reread_on_reload(pki, tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    for src, dst in (("server.crt", cert), ("server.key", key)):
        dst.write_bytes(open(f"{pki}/{src}", "rb").read())
    web = tmp_path / "web.yml"
    write_web(web, {"cert_file": "tls.crt", "key_file": "tls.key"})  # relative to web.yml
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        rc, out = s_client(e.port)
        assert "CN = server\n" in out or "CN=server\n" in out, out
        # A key that does not match the certificate: the reload is refused.
        cert.write_bytes(open(f"{pki}/server2.crt", "rb").read())
        e.signal(signal.SIGHUP)
        e.wait_log(r"config reload failed.*tls_server_config.key_file: .*does not match cert_file")
        rc, out = s_client(e.port)
        assert "CN = server\n" in out or "CN=server\n" in out, out  # the old one still serves
        key.write_bytes(open(f"{pki}/server2.key", "rb").read())
        e.signal(signal.SIGHUP)
        e.wait_log(r"config reloaded")
        rc, out = s_client(e.port)
        assert rc == 0 and ("CN = server2" in out or "CN=server2" in out), out


def test_prometheus_scrapes_over_tls_with_basic_auth(pki, tmp_path):
    web = tmp_path / "web.yml"
    write_web(web, {"cert_file": f"{pki}/server.crt", "key_file": f"{pki}/server.key"},
              users={"prom": "scrape-secret"})
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e, processes() as procs:
        assert curl(f"https://localhost:{e.port}/metrics", "--cacert", f"{pki}/server-ca.crt")[1] == 401
        prom_dir = tmp_path / "prom"
        prom_dir.mkdir()
        _, base = start_prometheus(procs, str(prom_dir), [f"localhost:{e.port}"])
        # start_prometheus scrapes plain HTTP; point it at HTTPS with auth and reload it.
        import yaml
        conf = prom_dir / "prometheus.yml"
        cfg = yaml.safe_load(conf.read_text())
        cfg["scrape_configs"][0].update({
            "scheme": "https",
            "tls_config": {"ca_file": f"{pki}/server-ca.crt"},
            "basic_auth": {"username": "prom", "password": "scrape-secret"},
        })
        conf.write_text(yaml.safe_dump(cfg))
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(base + "/-/reload", method="POST"), timeout=10)

        def up():
            r = prom_query(base, 'up{job="vmtime"} == 1 and scrape_samples_scraped{job="vmtime"} > 10')
            return r or None
        wait_until(up, 30, "Prometheus to scrape the exporter over TLS with basic auth")
        series = prom_query(base, 'vmtime_exporter_build_info{job="vmtime"}')
        assert series, "build_info not scraped"
