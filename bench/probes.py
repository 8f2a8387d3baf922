#!/usr/bin/env python3
"""Memory, startup and hot-reload measurements of dtc (see bench/README.md).

  probes.py rss     DTC CONFIG [--conns 1000]
  probes.py startup DTC CONFIG [--runs 20]
  probes.py reload  DTC WORKDIR [--reloads 50]

The kit's backends must already answer on 127.0.0.1:18001-18003 (bench/probes.sh starts them).
Prints one JSON line per measurement, and a human summary on stderr.
"""
import argparse, json, os, resource, socket, statistics, subprocess, sys, threading, time

LISTEN = ("127.0.0.1", 18100)


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def start_dtc(dtc, config, workers=1):
    return subprocess.Popen([dtc, "run", "--config", config, "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=open("/tmp/bench-dtc-probe.log", "w"),
                            start_new_session=True)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill(); proc.wait()


def http_get(sock, path="/kv/bench-key", method="GET", body=b""):
    req = f"{method} {path} HTTP/1.1\r\nHost: dtc\r\nContent-Length: {len(body)}\r\n".encode()
    if body:
        req += b"Content-Type: application/json\r\n"
    sock.sendall(req + b"\r\n" + body)
    return read_response(sock)


def read_response(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return status, rest[:length]


def wait_port(deadline_s=30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        try:
            s = socket.create_connection(LISTEN, timeout=1)
            return s
        except OSError:
            time.sleep(0.0005)
    raise TimeoutError("dtc did not listen")


def ready(deadline_s=30.0):
    s = wait_port(deadline_s)
    st, _ = http_get(s)
    s.close()
    return st


def cmd_rss(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.conns + 256)), hard))
    p = start_dtc(a.dtc, a.config, a.workers)
    try:
        ready()
        s = socket.create_connection(LISTEN)
        for _ in range(100):  # warm the node pools, as a sidecar that served a little
            http_get(s); http_get(s, method="POST", body=b'{"k":"v"}')
        s.close()
        time.sleep(1.0)
        idle = vmrss_kib(p.pid)
        socks = []
        for _ in range(a.conns):
            c = socket.create_connection(LISTEN)
            http_get(c)
            socks.append(c)
        time.sleep(1.0)
        loaded = vmrss_kib(p.pid)
        for c in socks:  # every connection still serves
            st, _ = http_get(c)
            assert st == 200, st
        loaded2 = vmrss_kib(p.pid)
        for c in socks:
            c.close()
        out = {"probe": "rss", "workers": a.workers, "idle_kib": idle, "conns": a.conns,
               "with_conns_kib": max(loaded, loaded2)}
        print(json.dumps(out))
        print(f"idle RSS {idle/1024:.1f} MiB; with {a.conns} open connections {max(loaded, loaded2)/1024:.1f} MiB",
              file=sys.stderr)
    finally:
        stop(p)


def cmd_startup(a):
    times = []
    for _ in range(a.runs):
        t0 = time.monotonic()
        p = start_dtc(a.dtc, a.config, a.workers)
        try:
            s = wait_port()
            t_listen = time.monotonic() - t0
            st, _ = http_get(s)
            t_served = time.monotonic() - t0
            s.close()
            assert st == 200, st
            times.append((t_listen * 1000, t_served * 1000))
        finally:
            stop(p)
    listen = sorted(t[0] for t in times); served = sorted(t[1] for t in times)
    out = {"probe": "startup", "runs": a.runs, "listen_ms_p50": round(statistics.median(listen), 2),
           "first_get_ms_p50": round(statistics.median(served), 2),
           "first_get_ms_max": round(max(served), 2)}
    print(json.dumps(out))
    print(f"startup: port open after {out['listen_ms_p50']} ms, first proxied GET answered after "
          f"{out['first_get_ms_p50']} ms (p50 of {a.runs}; max {out['first_get_ms_max']} ms)", file=sys.stderr)


def node_config(path, workdir, port, debounce=None):
    text = (f'[listen]\naddress = "127.0.0.1:18100"\nadmin = ""\n\n'
            f'[[nodes]]\nname = "node-{port}"\nurl = "http://127.0.0.1:{port}"\n\n'
            f'[journal]\ndir = "{workdir}/journal"\ndurability = "group"\n')
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)  # what editors and ConfigMaps do: a new file over the old


class Load(threading.Thread):
    """Keep-alive GET/POST traffic during reloads; counts answers that are not 2xx."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = False; self.ok = 0; self.failed = 0; self.errors = []

    def run(self):
        s = socket.create_connection(LISTEN)
        i = 0
        while not self.stop:
            i += 1
            try:
                if i % 2:
                    st, _ = http_get(s)
                else:
                    st, _ = http_get(s, method="POST", body=b'{"key":"bench-key","value":"x"}')
                if 200 <= st < 300:
                    self.ok += 1
                else:
                    self.failed += 1; self.errors.append(st)
            except (OSError, ConnectionError) as e:
                self.failed += 1; self.errors.append(str(e))
                s = socket.create_connection(LISTEN)
            time.sleep(0.001)


def cmd_reload(a):
    cfg = os.path.join(a.workdir, "reload.toml")
    node_config(cfg, a.workdir, 18001)
    p = start_dtc(a.dtc, cfg, a.workers)
    load = None
    try:
        ready()
        load = Load(); load.start()
        probe = socket.create_connection(LISTEN)
        lat = []
        port = 18001
        for _ in range(a.reloads):
            port = 18002 if port == 18001 else 18001
            want = f'"node":{port - 18000}'.encode()
            time.sleep(0.3)  # let the previous reload settle (debounce window closed)
            t0 = time.monotonic()
            node_config(cfg, a.workdir, port)
            while True:
                st, body = http_get(probe)
                if want in body:
                    break
                if time.monotonic() - t0 > 10:
                    raise TimeoutError("reload not seen within 10 s")
                time.sleep(0.0005)
            lat.append((time.monotonic() - t0) * 1000)
        load.stop = True; load.join(2)
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        out = {"probe": "reload", "reloads": len(lat), "p50_ms": round(statistics.median(lat), 1),
               "p99_ms": round(p99, 1), "max_ms": round(lat[-1], 1), "min_ms": round(lat[0], 1),
               "load_ok": load.ok, "load_failed": load.failed, "load_errors": load.errors[:5]}
        print(json.dumps(out))
        print(f"reload: file written -> new node set serving: p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms "
              f"(min {out['min_ms']}, max {out['max_ms']}, n={len(lat)}); requests during reloads: "
              f"{load.ok} ok, {load.failed} failed", file=sys.stderr)
    finally:
        if load:
            load.stop = True
        stop(p)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rss"); r.add_argument("dtc"); r.add_argument("config")
    r.add_argument("--conns", type=int, default=1000); r.add_argument("--workers", type=int, default=1)
    s = sub.add_parser("startup"); s.add_argument("dtc"); s.add_argument("config")
    s.add_argument("--runs", type=int, default=20); s.add_argument("--workers", type=int, default=1)
    l = sub.add_parser("reload"); l.add_argument("dtc"); l.add_argument("workdir")
    l.add_argument("--reloads", type=int, default=50); l.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    {"rss": cmd_rss, "startup": cmd_startup, "reload": cmd_reload}[a.cmd](a)


if __name__ == "__main__":
    main()
