#!/usr/bin/env python3
"""Load test for `worker-orcd serve` on loopback (bounded in time, stdlib only).

N honest clients stream /execute requests for M seconds; every stream must equal its solo run
(same prompt and seed). Reported: errors, differences, p50/p99 time to first token and total
latency, /health latency, RSS sampled each second. With --hostile the same run has alongside it
the clients of issue 12: 90 connections trickling header bytes, 300 idle sockets, 8 OpenAI
clients that leave after 1 s (each reopened when closed).

  bench/load/load.py --binary build/worker-orcd --model MODEL [--streams 16] [--seconds 60] [--hostile]
"""
import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def start_server(binary, model, extra):
    log = tempfile.NamedTemporaryFile(prefix="wo-load-", suffix=".log", delete=False)
    proc = subprocess.Popen([binary, "serve", "--model", model, "--port", "0", "--host", "127.0.0.1"] + extra,
                            stdout=subprocess.DEVNULL, stderr=log)
    port = 0
    for _ in range(600):
        with open(log.name) as f:
            m = re.search(r'"event":"http_listening".*?"port":(\d+)', f.read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    if not port:
        proc.kill()
        sys.exit("server did not start: see " + log.name)
    for _ in range(1200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("server never became ready: see " + log.name)


def execute(port, body, timeout=120):
    """One /execute stream: (text, ttft_s, total_s, error or None)."""
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("POST", "/execute", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            return "", 0, time.monotonic() - t0, "HTTP %d %s" % (r.status, r.read()[:200])
        text, ttft, last, event = "", None, None, ""
        for raw in r:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                d = json.loads(line[6:])
                if event == "token":
                    if ttft is None:
                        ttft = time.monotonic() - t0
                    text += d["t"]
                last = (event, d)
        if not last or last[0] != "end":
            return text, ttft or 0, time.monotonic() - t0, "ended with %r" % (last,)
        return text, ttft or 0, time.monotonic() - t0, None
    except OSError as e:
        return "", 0, time.monotonic() - t0, repr(e)


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Hostile:
    """The attackers of issue 12, each reopened when the server closes it."""

    def __init__(self, port, stop):
        self.port, self.stop, self.threads = port, stop, []
        self.counts = {"trickle_closed": 0, "idle_closed": 0, "leavers": 0}
        self.lock = threading.Lock()

    def bump(self, k):
        with self.lock:
            self.counts[k] += 1

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setblocking(False)
        return s

    def trickle(self):
        head = b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
        socks = [[None, 0] for _ in range(90)]
        while not self.stop.is_set():
            for s in socks:
                try:
                    if s[0] is None:
                        s[0], s[1] = self.connect(), 0
                    s[0].send(head[s[1] % len(head):s[1] % len(head) + 1])
                    s[1] += 1
                    if s[0].recv(1024) == b"":
                        raise OSError("closed")
                except BlockingIOError:
                    pass
                except OSError:
                    if s[0] is not None:
                        s[0].close()
                        self.bump("trickle_closed")
                    s[0] = None
            self.stop.wait(1.0)
        for s in socks:
            if s[0] is not None:
                s[0].close()

    def idle(self):
        socks = [None] * 300
        while not self.stop.is_set():
            for i, s in enumerate(socks):
                try:
                    if s is None:
                        socks[i] = self.connect()
                    elif s.recv(1024) == b"":
                        raise OSError("closed")
                except BlockingIOError:
                    pass
                except OSError:
                    if socks[i] is not None:
                        socks[i].close()
                        self.bump("idle_closed")
                    socks[i] = None
            self.stop.wait(0.2)
        for s in socks:
            if s is not None:
                s.close()

    def leaver(self):
        body = json.dumps({"prompt": "Tell me everything", "max_tokens": 4000}).encode()
        req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % len(body)) + body
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.sendall(req)
                self.stop.wait(1.0)
                s.close()
                self.bump("leavers")
            except OSError:
                self.stop.wait(0.2)

    def start(self):
        for fn in [self.trickle, self.idle] + [self.leaver] * 8:
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self.threads.append(t)

    def join(self):
        for t in self.threads:
            t.join(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/worker-orcd")
    ap.add_argument("--model", required=True)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--hostile", action="store_true")
    ap.add_argument("--server-args", default="--parallel 16 --ctx 4096 --threads 2")
    a = ap.parse_args()
    proc, port = start_server(a.binary, a.model, a.server_args.split())
    try:
        def body(k, tag):
            return {"job_id": "%s-%d-%f" % (tag, k, time.monotonic()), "prompt": "Stream %d says" % k,
                    "max_tokens": a.tokens, "seed": 1000 + k, "temperature": 0.9, "top_k": 40 + k, "top_p": 0.95}

        solo = []
        for k in range(a.streams):
            text, _, _, err = execute(port, body(k, "solo"))
            if err:
                sys.exit("solo run %d failed: %s" % (k, err))
            solo.append(text)
        stop = threading.Event()
        hostile = Hostile(port, stop) if a.hostile else None
        if hostile:
            hostile.start()
            time.sleep(2)  # let the attack reach its steady state
        ttft, lat, health, rss = [], [], [], []
        errors, diffs, runs = [], 0, 0
        lock = threading.Lock()

        def client(k):
            nonlocal diffs, runs
            while not stop.is_set():
                text, t1, t2, err = execute(port, body(k, "load"))
                with lock:
                    runs += 1
                    if err:
                        errors.append(err)
                    else:
                        ttft.append(t1)
                        lat.append(t2)
                        diffs += text != solo[k]

        clients = [threading.Thread(target=client, args=(k,)) for k in range(a.streams)]
        for t in clients:
            t.start()
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("GET", "/health")
                c.getresponse().read()
                health.append(time.monotonic() - t0)
            except OSError as e:
                errors.append("health: %r" % e)
            rss.append(rss_mb(proc.pid))
            time.sleep(max(0, 1.0 - (time.monotonic() - t0)))
        stop.set()
        for t in clients:
            t.join()
        if hostile:
            hostile.join()
        ms = lambda x: round(1000 * x, 1)
        out = {
            "streams": a.streams, "seconds": a.seconds, "hostile": a.hostile, "requests": runs,
            "errors": len(errors), "first_errors": errors[:5], "differences_from_solo": diffs,
            "ttft_ms": {"p50": ms(pct(ttft, 50)), "p99": ms(pct(ttft, 99))},
            "latency_ms": {"p50": ms(pct(lat, 50)), "p99": ms(pct(lat, 99))},
            "health_ms": {"p50": ms(pct(health, 50)), "max": ms(max(health) if health else float("nan"))},
            "rss_mb": {"first": round(rss[0], 1) if rss else 0, "last": round(rss[-1], 1) if rss else 0,
                       "max": round(max(rss), 1) if rss else 0},
        }
        if hostile:
            out["attack"] = hostile.counts
        print(json.dumps(out, indent=1))
        return 0 if not errors and diffs == 0 else 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
