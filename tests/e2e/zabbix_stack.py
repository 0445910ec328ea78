#!/usr/bin/python3
"""A private Zabbix 6.0 stack for end-to-end tests (tests/e2e/test_zabbix_server.py):

  * PostgreSQL 15 (Debian's binaries, not its main cluster): initdb in a
    test-owned directory as the unprivileged user `nobody` (postgres refuses
    root), unix socket in a private directory, TCP on 127.0.0.1:<free port>,
    trust authentication, fsync off (a throw-away database);
  * the Zabbix schema, images and data loaded from the server package that
    scripts/setup --test unpacks into /usr/local/lib/vmtime-exporter/
    zabbix-server-pgsql (never installed: it Conflicts with the proxy);
  * zabbix_server -f with a private config (PidFile, LogFile, SocketDir,
    ListenIP 127.0.0.1, ExternalScripts in the test directory, one-second
    configuration cache updates, few processes);
  * the frontend's JSON-RPC API (api_jsonrpc.php) served by `php -S
    127.0.0.1:<port>` from a private copy of /usr/share/zabbix whose config
    path points at a private zabbix.conf.php (Debian's frontend hard-codes
    /etc/zabbix/zabbix.conf.php; nothing is written under /etc).

Everything lives in one temporary directory and is stopped and removed on
exit, also when the test fails; every wait is bounded. Nothing here touches
a service of the machine.
"""

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import integrations_support as sup

SERVER_ROOT = os.environ.get("VMTIME_ZABBIX_SERVER_ROOT",
                             "/usr/local/lib/vmtime-exporter/zabbix-server-pgsql")
ZABBIX_SERVER = os.path.join(SERVER_ROOT, "usr", "sbin", "zabbix_server")
SQL_DIR = os.path.join(SERVER_ROOT, "usr", "share", "zabbix-server-pgsql")
FRONTEND = "/usr/share/zabbix"
PG_BIN = "/usr/lib/postgresql/15/bin"
DB_USER = "nobody"  # the cluster's owner and the role Zabbix connects as
# Loaded clusters, one per schema + PostgreSQL version (see _cached_cluster).
DB_CACHE = os.environ.get("VMTIME_ZABBIX_DB_CACHE", "/var/tmp/vmtime-zabbix-db")


def missing():
    """Why the stack cannot start here ("" when it can)."""
    for path, what in ((ZABBIX_SERVER, "zabbix_server (scripts/setup --test unpacks it)"),
                       (os.path.join(SQL_DIR, "schema.sql.gz"), "the Zabbix PostgreSQL schema"),
                       (os.path.join(FRONTEND, "api_jsonrpc.php"), "zabbix-frontend-php"),
                       (os.path.join(PG_BIN, "initdb"), "postgresql-15"),
                       ("/usr/bin/php", "php-cli")):
        if not os.path.exists(path):
            return f"{what} missing: {path}"
    if os.geteuid() != 0:
        return "needs root (to run PostgreSQL as nobody)"
    return ""


class ApiError(RuntimeError):
    pass


class ZabbixStack:
    """Use as a context manager; `api(method, params)` calls the JSON-RPC API
    as Admin. `external_scripts` is the server's ExternalScripts directory."""

    def __init__(self, workdir=None, start_timeout=120):
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="vmtime-zabbix-server-")
        os.chmod(self.dir, 0o711)  # nobody traverses to its own subdirectories
        self.start_timeout = start_timeout
        self.procs = []
        self.token = None
        self.external_scripts = os.path.join(self.dir, "externalscripts")
        self.timings = {}

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                p.stop(grace=15)
        self.procs = []
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _timed(self, what, fn):
        t0 = time.monotonic()
        out = fn()
        self.timings[what] = time.monotonic() - t0
        return out

    def _start(self):
        self._timed("postgres", self._start_postgres)
        self._timed("frontend", self._start_frontend)
        self._timed("server", self._start_server)
        self._timed("login", self._login)

    # --- PostgreSQL --------------------------------------------------------

    def _as_db_user(self, argv, **kw):
        return ["setpriv", f"--reuid={DB_USER}", f"--regid={self._gid}", "--clear-groups",
                "--reset-env", "--", *argv]

    def _start_postgres(self):
        pw = pwd.getpwnam(DB_USER)
        self._uid, self._gid = pw.pw_uid, pw.pw_gid
        self.pgsock = os.path.join(self.dir, "pgsock")
        os.makedirs(self.pgsock, mode=0o700)
        os.chown(self.pgsock, self._uid, self._gid)
        cached = self._timed("database cache", self._cached_cluster)
        self.pgdata = os.path.join(self.dir, "pgdata")
        r = subprocess.run(["cp", "-a", cached, self.pgdata], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"copying the cached cluster {cached}: {r.stderr}")
        self.pgport = sup.free_port()
        self.procs.append(self._postgres(self.pgdata, self.pgport, "postgres"))

    def _postgres(self, pgdata, port, name):
        argv = self._as_db_user([os.path.join(PG_BIN, "postgres"), "-D", pgdata,
                                 "-k", self.pgsock, "-p", str(port),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                 "-c", "shared_buffers=32MB", "-c", "max_connections=60"])
        p = sup.Proc(name, argv, self.dir)
        try:
            p.wait_log(r"database system is ready to accept connections", 60)
        except BaseException:
            p.stop()
            raise
        return p

    def _cached_cluster(self):
        """A stopped cluster with the Zabbix database loaded, built once per
        schema and PostgreSQL version under DB_CACHE (loading data.sql's
        170,000 INSERTs takes one to two minutes on two busy cores; copying
        the result takes a second)."""
        h = hashlib.sha256(b"cache layout 2: loaded, vacuumed and analysed\n")
        for name in ("schema", "images", "data"):
            with open(os.path.join(SQL_DIR, f"{name}.sql.gz"), "rb") as f:
                h.update(f.read())
        h.update(subprocess.run([os.path.join(PG_BIN, "postgres"), "--version"], capture_output=True,
                                text=True, timeout=30).stdout.encode())
        os.makedirs(DB_CACHE, mode=0o755, exist_ok=True)
        final = os.path.join(DB_CACHE, h.hexdigest()[:16])
        if os.path.isfile(os.path.join(final, "PG_VERSION")):
            return final
        # One build at a time (the server and lab tests may start together on
        # a fresh machine); the lock goes with the file descriptor.
        with open(os.path.join(DB_CACHE, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.isfile(os.path.join(final, "PG_VERSION")):
                return final
            return self._build_cluster(final)

    def _build_cluster(self, final):
        build = tempfile.mkdtemp(prefix="build-", dir=DB_CACHE)
        try:
            os.chmod(build, 0o700)
            os.chown(build, self._uid, self._gid)
            r = subprocess.run(self._as_db_user([os.path.join(PG_BIN, "initdb"), "-D", build,
                                                 "-U", DB_USER, "--auth=trust", "-E", "UTF8",
                                                 "--locale=C.UTF-8", "--no-sync"]),
                               capture_output=True, text=True, timeout=120, cwd=self.dir)
            if r.returncode != 0:
                raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
            self.pgport = sup.free_port()
            p = self._postgres(build, self.pgport, "postgres-build")
            try:
                self.psql("CREATE DATABASE zabbix ENCODING 'UTF8' TEMPLATE template0", db="postgres")
                self._timed("schema", self._load_schema)
                # Planner statistics: without them the API's joins over
                # items/triggers/functions take seconds each (host.create
                # with a template took minutes on a loaded machine).
                self.psql("VACUUM ANALYZE", timeout=300)
            finally:
                p.stop(grace=60)  # SIGTERM: smart shutdown, a clean cluster to copy
            os.rename(build, final)
            for old in os.listdir(DB_CACHE):  # clusters of an earlier schema or PostgreSQL
                if re.fullmatch(r"[0-9a-f]{16}", old) and old != os.path.basename(final):
                    shutil.rmtree(os.path.join(DB_CACHE, old), ignore_errors=True)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        return final

    def psql(self, sql=None, db="zabbix", stdin=None, timeout=120):
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pgsock, "-p", str(self.pgport),
                "-U", DB_USER, "-d", db, "-At"]
        if sql is not None:
            argv += ["-c", sql]
        r = subprocess.run(self._as_db_user(argv), input=stdin, capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql or '<stdin>'!r:.80} failed ({r.returncode}): {r.stderr[-2000:]}")
        return r.stdout

    def _load_schema(self):
        for name in ("schema", "images", "data"):
            with gzip.open(os.path.join(SQL_DIR, f"{name}.sql.gz"), "rt") as f:
                sql = f.read()
            # replica: foreign-key triggers do not fire during the bulk load
            # (the data is Zabbix's own, consistent by construction).
            self.psql(stdin="SET session_replication_role = replica;\nBEGIN;\n" + sql + "\nCOMMIT;\n",
                      timeout=900)

    # --- frontend (API) ----------------------------------------------------

    def _start_frontend(self):
        web = os.path.join(self.dir, "frontend")
        # Hard links where the file system allows (fast), copies otherwise;
        # PHP resolves the frontend root with realpath(), so symlinks would
        # lead it back to /usr/share/zabbix and its /etc config path.
        r = subprocess.run(["cp", "-al", FRONTEND, web], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(web, ignore_errors=True)
            shutil.copytree(FRONTEND, web, symlinks=True)
        conf = os.path.join(self.dir, "zabbix.conf.php")
        with open(conf, "w") as f:
            f.write("<?php\n"
                    "$DB['TYPE'] = ZBX_DB_POSTGRESQL;\n"
                    "$DB['SERVER'] = '127.0.0.1';\n"
                    f"$DB['PORT'] = '{self.pgport}';\n"
                    "$DB['DATABASE'] = 'zabbix';\n"
                    f"$DB['USER'] = '{DB_USER}';\n"
                    "$DB['PASSWORD'] = '';\n"
                    "$DB['SCHEMA'] = '';\n"
                    "$DB['ENCRYPTION'] = false;\n"
                    "$DB['DOUBLE_IEEE754'] = true;\n"
                    "$ZBX_SERVER = '127.0.0.1';\n"
                    "$ZBX_SERVER_PORT = '0';\n"
                    "$ZBX_SERVER_NAME = 'vmtime test';\n"
                    "$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;\n")
        cfile = os.path.join(web, "include", "classes", "core", "CConfigFile.php")
        with open(cfile) as f:
            text = f.read()
        if "'/etc/zabbix/zabbix.conf.php'" not in text:
            raise RuntimeError(f"{cfile}: the config path constant this helper rewrites is not there")
        os.unlink(cfile)  # a hard link to the package's file: replace, never write through
        with open(cfile, "w") as f:
            f.write(text.replace("'/etc/zabbix/zabbix.conf.php'", repr(conf)))
        self.web_port = sup.free_port()
        self.api_url = f"http://127.0.0.1:{self.web_port}/api_jsonrpc.php"
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS="2")
        p = sup.Proc("php", ["php", "-d", "memory_limit=512M", "-d", "max_execution_time=300",
                             "-d", "post_max_size=16M", "-d", "date.timezone=UTC",
                             "-d", "display_errors=stderr",
                             "-S", f"127.0.0.1:{self.web_port}", "-t", web], self.dir, env=env)
        self.procs.append(p)
        sup.wait_until(lambda: self._raw("apiinfo.version", {}, auth=False), 30, "the Zabbix API")

    def _raw(self, method, params, auth=True):
        body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
        if auth:
            body["auth"] = self.token
        req = urllib.request.Request(self.api_url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json-rpc"})
        with urllib.request.urlopen(req, timeout=120) as r:
            doc = json.loads(r.read().decode())
        if "error" in doc:
            e = doc["error"]
            raise ApiError(f"{method}: {e.get('message')} {e.get('data')}")
        return doc["result"]

    def api(self, method, params):
        return self._raw(method, params)

    def _login(self):
        self.token = self._raw("user.login", {"username": "Admin", "password": "zabbix"}, auth=False)
        # The database comes with a monitored "Zabbix server" host (internal
        # items every few seconds): disabled, it costs the test no CPU.
        own = self._raw("host.get", {"output": ["hostid"], "filter": {"host": ["Zabbix server"]}})
        for h in own:
            self._raw("host.update", {"hostid": h["hostid"], "status": 1})

    # --- server ------------------------------------------------------------

    def _start_server(self):
        os.makedirs(self.external_scripts, exist_ok=True)
        sockdir = os.path.join(self.dir, "zbxsock")
        os.makedirs(sockdir, mode=0o700)
        self.server_port = sup.free_port_in(20000, 32767)
        self.server_conf = os.path.join(self.dir, "zabbix_server.conf")
        self.server_log = os.path.join(self.dir, "zabbix_server.log")
        with open(self.server_conf, "w") as f:
            f.write("\n".join([
                f"LogType=file", f"LogFile={self.server_log}", "LogFileSize=0", "DebugLevel=3",
                f"PidFile={self.dir}/zabbix_server.pid", f"SocketDir={sockdir}",
                "ListenIP=127.0.0.1", f"ListenPort={self.server_port}",
                "DBHost=127.0.0.1", f"DBPort={self.pgport}", "DBName=zabbix", f"DBUser={DB_USER}",
                f"ExternalScripts={self.external_scripts}",
                "CacheUpdateFrequency=1", "Timeout=10", "AllowRoot=1", "HousekeepingFrequency=0",
                "StartPollers=2", "StartPollersUnreachable=1", "StartTrappers=1", "StartPingers=0",
                "StartDiscoverers=0", "StartHTTPPollers=1", "StartTimers=1", "StartEscalators=1",
                "StartAlerters=1", "StartPreprocessors=2", "StartLLDProcessors=1",
                "StartHistoryPollers=1", "StartDBSyncers=1", "StartProxyPollers=0",
                "StartReportWriters=0", "StartODBCPollers=0", "StartVMwareCollectors=0",
                f"TmpDir={self.dir}", f"FpingLocation=/usr/bin/fping", ""]))
        p = sup.Proc("zabbix_server", [ZABBIX_SERVER, "-f", "-c", self.server_conf], self.dir)
        self.procs.append(p)
        self.server_proc = p

        def started():
            if not p.alive():
                raise RuntimeError(f"zabbix_server exited {p.proc.returncode}: {self.server_log_tail()}")
            return "server #0 started" in self.server_log_text()
        try:
            sup.wait_until(started, 60, "zabbix_server to start")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.server_log_tail()}") from None

    def server_log_text(self):
        try:
            with open(self.server_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def server_log_tail(self, n=40):
        return "\n".join(self.server_log_text().splitlines()[-n:])

    def reload_config_cache(self):
        """zabbix_server -R config_cache_reload: makes the server pick up new
        hosts and discovered items now rather than at the next cache update."""
        r = subprocess.run([ZABBIX_SERVER, "-c", self.server_conf, "-R", "config_cache_reload"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"config_cache_reload failed: {r.stdout}{r.stderr}")
