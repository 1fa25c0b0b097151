"""Long-lived HTTP poller run inside the client namespace (standalone: stdlib only).

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout.
  {"op": "get", "ip": .., "port": .., "timeout": ..}      -> {"ok": true, "answer": str|null}
  {"op": "start", "ip", "port", "interval", "timeout", "max_seconds"} -> {"ok": true}
  {"op": "stop"}                                            -> {"ok": true, "samples": [[t, a]..]}
  {"op": "ping"}                                            -> {"ok": true}
Exits on EOF of stdin. Background polling stops by itself after max_seconds (<= 600).

Background polling starts a request every `interval` whether or not earlier ones have been
answered (a request to an address nobody answers waits out its timeout; waiting for it would make
the timeout, not the interval, the resolution).  A sample is [t, answer] where t is when an
answered request was answered and when an unanswered one was sent: an outage then runs from the
first unanswered request sent to the first answer received, whichever request it belongs to.
"""

import json
import socket
import struct
import sys
import threading
import time

MAX_POLL_SECONDS = 600.0
MAX_BODY = 1 << 20


def http_get(ip, port, timeout):
    """One `GET /` over HTTP/1.0; the stripped body on status 200, else None."""
    deadline = time.monotonic() + timeout
    v6 = ":" in ip  # an IPv6 literal: its own family, and brackets in the Host header
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    # Close with RST: no TIME_WAIT pile-up on either side at 40 requests a second.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.settimeout(timeout)
        s.connect((ip, port))
        host = f"[{ip}]" if v6 else ip
        s.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
        chunks = []
        total = 0
        while total < MAX_BODY:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            s.settimeout(remaining)
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
            total += len(data)
    except OSError:
        return None
    finally:
        s.close()
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not sep:
        return None
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        return None
    return body.decode("utf-8", "replace").strip()


class Poller:
    def __init__(self):
        self.thread = None
        self.stop_evt = threading.Event()
        self.samples = []

    def start(self, ip, port, interval, timeout, max_seconds):
        self.stop()
        self.samples = []
        self.stop_evt = threading.Event()
        max_seconds = min(float(max_seconds), MAX_POLL_SECONDS)
        self.thread = threading.Thread(
            target=self._loop, args=(ip, port, interval, timeout, max_seconds, self.stop_evt,
                                     self.samples), daemon=True)
        self.thread.start()

    @staticmethod
    def _loop(ip, port, interval, timeout, max_seconds, stop_evt, samples):
        end = time.monotonic() + max_seconds
        max_count = int(max_seconds / max(interval, 0.001)) + 1
        max_inflight = int(timeout / max(interval, 0.001)) + 8
        lock = threading.Lock()
        inflight = []

        def one(t0):
            answer = http_get(ip, port, timeout)
            with lock:
                samples.append((time.monotonic() if answer is not None else t0, answer))

        for _ in range(max_count):
            t0 = time.monotonic()
            if stop_evt.is_set() or t0 >= end:
                break
            inflight = [th for th in inflight if th.is_alive()]
            if len(inflight) < max_inflight:       # bounded: a wedged stack cannot pile up threads
                th = threading.Thread(target=one, args=(t0,), daemon=True)
                th.start()
                inflight.append(th)
            else:
                with lock:
                    samples.append((t0, None))
            delay = t0 + interval - time.monotonic()
            if delay > 0 and stop_evt.wait(delay):
                break
        for th in inflight:
            th.join(timeout=timeout + 1.0)
        with lock:
            samples.sort(key=lambda s: s[0])

    def stop(self):
        samples = self.samples
        if self.thread is not None:
            self.stop_evt.set()
            self.thread.join(timeout=5)
            self.thread = None
        self.samples = []
        return samples


def main():
    poller = Poller()
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            op = msg.get("op")
            if op == "get":
                ans = {"ok": True, "answer": http_get(msg["ip"], int(msg["port"]),
                                                      float(msg["timeout"]))}
            elif op == "start":
                poller.start(msg["ip"], int(msg["port"]), float(msg["interval"]),
                             float(msg["timeout"]), float(msg["max_seconds"]))
                ans = {"ok": True}
            elif op == "stop":
                ans = {"ok": True, "samples": poller.stop()}
            elif op == "ping":
                ans = {"ok": True}
            else:
                ans = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # report, keep serving
            ans = {"ok": False, "error": repr(exc)}
        out.write(json.dumps(ans) + "\n")
        out.flush()
    poller.stop()


if __name__ == "__main__":
    main()
