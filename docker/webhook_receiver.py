#!/usr/bin/python3
"""A logging Alertmanager webhook receiver for docker/compose.yml.

alerts/alertmanager.yml sends notifications to
http://127.0.0.1:9095/vmtime/{critical,warning}; in compose this receiver
runs in Alertmanager's network namespace and prints one line per alert of
every notification (path, status, alertname, severity, instance, domain),
so `docker compose logs webhook` shows what would have paged. Replace the
receivers' URLs with real ones (PagerDuty, e-mail, chat) in production.

Standard library only (Debian's python3). Bodies over 1 MiB are refused
(413), bodies that are not an Alertmanager notification get 400 and a log
line naming what is wrong.
"""
import argparse
import http.server
import json
import sys

MAX_BODY_BYTES = 1 << 20


def describe(notification):
    """One log line per alert of an Alertmanager notification (a dict)."""
    alerts = notification.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("no 'alerts' list")
    lines = []
    for alert in alerts:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels", {}), dict):
            raise ValueError("an alert is not an object with a 'labels' object")
        labels = alert.get("labels", {})
        fields = [f"status={alert.get('status', notification.get('status', '?'))}"]
        for key in ("alertname", "severity", "instance", "domain"):
            if key in labels:
                fields.append(f"{key}={labels[key]}")
        lines.append(" ".join(fields))
    return lines


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "vmtime-webhook/1"

    def _reply(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/healthz":
            self._reply(200, "ok")
        else:
            self._reply(404, "POST Alertmanager notifications here")

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, "Content-Length required")
            return
        if length < 0 or length > MAX_BODY_BYTES:
            print(f"webhook {self.path}: body of {length} bytes refused", flush=True)
            self._reply(413, "body too large")
            return
        raw = self.rfile.read(length)
        try:
            lines = describe(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as e:
            print(f"webhook {self.path}: bad notification: {e}", flush=True)
            self._reply(400, f"bad notification: {e}")
            return
        for line in lines:
            print(f"webhook {self.path}: {line}", flush=True)
        self._reply(200, "ok")

    def log_message(self, fmt, *args):
        pass  # one line per alert above is the log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9095", help="host:port (default %(default)s)")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    print(f"webhook: listening on {args.listen}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
