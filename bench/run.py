#!/usr/bin/env python3
"""`make bench`: Slipway's headline figures, measured on this machine in one run.

Sections (each can be chosen with BENCH_SECTIONS, default all):
  wake     a real `slipway up` (private PostgreSQL and Redis, sandboxes); a hello app per server
           template is deployed with `slipway deploy`, put to sleep with `slipway sleep NAME
           [--freeze]` and woken by one request; the client times the request and `slipway status
           NAME --json` gives the wake's phases. App boot (the app's own start to its first answer)
           is timed separately with the same command started bare (bwrap with a mount namespace
           only, so the folder is at /app as in the sandbox). Fast starts (Python bytecode, the Java
           CDS archive, Node's compile cache) are measured as app boot with and without them.
  gateway  wrk against an nginx upstream on loopback: direct, through Slipway's gateway
           (orchestrator/examples/gateway_bench.rs), and through nginx as a reverse proxy.
  burst    BENCH_BURST concurrent requests to a stopped app.
  scale    a second `slipway up` with BENCH_PROJECTS static projects deployed through the API and
           BENCH_AWAKE of them awake: the RSS of the `slipway up` process, and the autoscaler's
           tick time from its metrics when it exports them.

Everything listens on and sends to loopback only; every loop is bounded; every process started
here is stopped at the end. Results go to BENCH_OUT (default bench/results.json) and a table is
printed. Pure computations live in stats.py (unit-tested).
"""

import concurrent.futures
import http.client
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import stats

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def env_int(name, default, minimum=1):
    value = int(os.environ.get(name, default))
    if value < minimum:
        sys.exit(f"bench: {name} = {value}, must be at least {minimum}")
    return value


TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
SLIPWAY = os.environ.get("SLIPWAY_BIN", os.path.join(TARGET_DIR, "release", "slipway"))
GATEWAY_BENCH = os.environ.get("GATEWAY_BENCH_BIN", os.path.join(TARGET_DIR, "release", "examples", "gateway_bench"))
SAMPLES = env_int("BENCH_SAMPLES", 30)
BURST = env_int("BENCH_BURST", 200)
PROJECTS = env_int("BENCH_PROJECTS", 1000)
AWAKE = env_int("BENCH_AWAKE", 20)
WRK_SECONDS = env_int("BENCH_WRK_SECONDS", 5)
WRK_ROUNDS = env_int("BENCH_WRK_ROUNDS", 3)
WRK_CONNECTIONS = env_int("BENCH_WRK_CONNECTIONS", 32)
SECTIONS = [s for s in os.environ.get("BENCH_SECTIONS", "wake,gateway,burst,scale").split(",") if s]
TEMPLATES = [t for t in os.environ.get("BENCH_TEMPLATES", "static,node,vite,python,java,go").split(",") if t]
OUT = os.environ.get("BENCH_OUT", os.path.join(HERE, "results.json"))
KEEP = os.environ.get("BENCH_KEEP") == "1"
# How long the scale section may spend deploying before it measures what it has.
SCALE_DEPLOY_BUDGET = env_int("BENCH_SCALE_DEPLOY_SECONDS", 480)
TICK_WAIT = env_int("BENCH_TICK_WAIT_SECONDS", 70)
EMAIL = "bench@pusan.ac.kr"
PASSWORD = "bench password for loopback only"

# The hello app of each template, from examples/ (java is packed into a runnable jar here, because
# Maven cannot download through the build proxy; see the README).
EXAMPLES = {"static": "static-hello", "node": "node-hello", "vite": "vite-hello", "python": "python-flask",
            "java": "java-hello", "go": "go-hello"}
TOOLCHAINS = {"java": ["javac", "jar", "java"], "go": ["go"]}


def log(message):
    print(f"bench: {message}", flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ms_since(start):
    return (time.perf_counter() - start) * 1000.0


def http_get(port, host, path="/", timeout=60.0, accept="*/*"):
    """One GET on a new connection: (status, milliseconds to the last byte of the answer)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "slipway-bench", "Accept": accept})
        response = conn.getresponse()
        response.read()
        return response.status, ms_since(start)
    finally:
        conn.close()


class Processes:
    """Every process this run starts, so that all of them are stopped, by pid, at the end."""

    def __init__(self):
        self.children = []

    def start(self, argv, **kwargs):
        child = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.children.append(child)
        return child

    def stop(self, child, timeout=60):
        if child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self):
        for child in list(reversed(self.children)):
            self.stop(child)


PROCESSES = Processes()


class Slipway:
    """One `slipway up` with its own data dir, private PostgreSQL and Redis, and a CLI login."""

    def __init__(self, workdir, name, extra_top="", extra_tables=""):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.data_dir = os.path.join(self.dir, "data")
        self.portal_port = free_port()
        self.gateway_port = free_port()
        self.config = os.path.join(self.dir, "slipway.toml")
        self.home = os.path.join(self.dir, "config-home")
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{self.data_dir}"\nportal_addr = "127.0.0.1:{self.portal_port}"\n'
                    f'gateway_addr = "127.0.0.1:{self.gateway_port}"\nallowed_email_domains = ["pusan.ac.kr"]\n'
                    f'log = "warn"\n{extra_top}\n'
                    # Sleeping is the benchmark's doing, not the idle timers'.
                    '[scaling]\nfreeze_after = "2h"\nidle = "3h"\n'
                    f'{extra_tables}\n')
        self.env = dict(os.environ, XDG_CONFIG_HOME=self.home, SLIPWAY_CONFIG=self.config, SLIPWAY_LOG="warn")
        for name_ in ["DATABASE_URL", "REDIS_URL", "SLIPWAY_PORTAL", "SLIPWAY_TOKEN"]:
            self.env.pop(name_, None)
        self.child = None
        self.token = None

    def accepts(self, extra_line):
        """Whether this build of slipway accepts a configuration line (keys added by later work)."""
        probe = os.path.join(self.dir, "probe.toml")
        with open(self.config) as f, open(probe, "w") as out:
            out.write(extra_line + "\n" + f.read())
        ok = subprocess.run([SLIPWAY, "config", "check", "--config", probe], env=self.env,
                            capture_output=True).returncode == 0
        os.remove(probe)
        return ok

    def up(self):
        self.log = open(os.path.join(self.dir, "slipway-up.log"), "w")
        self.child = PROCESSES.start([SLIPWAY, "up", "--config", self.config], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = http_get(self.portal_port, "127.0.0.1", "/healthz", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if self.child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slipway up did not start; see {self.log.name}")
            time.sleep(0.1)
        created = subprocess.run([SLIPWAY, "admin", "create-user", EMAIL, "--role", "admin", "--password-stdin",
                                  "--config", self.config], input=PASSWORD.encode(), env=self.env, capture_output=True)
        if created.returncode != 0:
            raise RuntimeError(f"create-user failed: {created.stderr.decode()}")
        self.cli("login", "--portal", f"http://127.0.0.1:{self.portal_port}", "--email", EMAIL, "--password-stdin",
                 stdin=PASSWORD)
        with open(os.path.join(self.home, "slipway", "credentials.toml")) as f:
            for line in f:
                if line.startswith("token = "):
                    self.token = line.split("=", 1)[1].strip().strip('"')

    def down(self):
        if self.child is not None:
            PROCESSES.stop(self.child, timeout=120)
            self.child = None

    def cli(self, *args, stdin=None, check=True):
        done = subprocess.run([SLIPWAY, *args], env=self.env, capture_output=True,
                              input=stdin.encode() if stdin else None, timeout=900)
        if check and done.returncode != 0:
            raise RuntimeError(f"slipway {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout.decode()

    def api(self, method, path, body=None, content_type="application/json", timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.portal_port, timeout=timeout)
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            if body is not None:
                headers["Content-Type"] = content_type
                if content_type == "application/json":
                    body = json.dumps(body).encode()
            conn.request(method, "/api/v1" + path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read()
            try:
                return response.status, json.loads(text) if text else None
            except ValueError:
                return response.status, text.decode(errors="replace")
        finally:
            conn.close()

    def status(self, name):
        return json.loads(self.cli("status", name, "--json"))

    def psql(self, sql):
        psql = sorted(p for p in (os.path.join("/usr/lib/postgresql", v, "bin", "psql")
                                  for v in os.listdir("/usr/lib/postgresql")) if os.path.exists(p))[-1]
        done = subprocess.run([psql, "-h", os.path.join(self.data_dir, "run"), "-p", "5432", "-U", "slipway",
                               "-d", "slipway", "-At", "-c", sql], capture_output=True, check=True)
        return done.stdout.decode().strip()

    def live_revision(self, name):
        """(folder, plan) of the live revision of project `name`, read from the portal's database."""
        row = self.psql("select p.id || ' ' || r.number || ' ' || r.plan::text from projects p join revisions r "
                        f"on r.project_id = p.id where p.name = '{name}' and r.status = 'live'")
        project_id, number, plan = row.split(" ", 2)
        return os.path.join(self.data_dir, "apps", project_id, f"r{number}"), json.loads(plan)

    def build_log(self, name):
        revision_id = self.psql(f"select r.id from projects p join revisions r on r.project_id = p.id "
                                f"where p.name = '{name}' order by r.number desc limit 1")
        path = os.path.join(self.data_dir, "logs", "builds", f"{revision_id}.log")
        return open(path).read() if os.path.exists(path) else ""


# ---------------------------------------------------------------------------------------------
# wake


def prepare_example(template, workdir):
    """The folder to deploy for `template`, or None with the reason it cannot be benchmarked here."""
    missing = [tool for tool in TOOLCHAINS.get(template, []) if shutil.which(tool) is None]
    if missing:
        return None, f"{', '.join(missing)} not installed (bench/setup.sh installs them from Debian)"
    source = os.path.join(REPO, "examples", EXAMPLES[template])
    if template != "java":
        return source, None
    out = os.path.join(workdir, "java-jar")
    classes = os.path.join(out, "classes")
    os.makedirs(classes, exist_ok=True)
    subprocess.run(["javac", "--release", "17", "-d", classes,
                    os.path.join(source, "src/main/java/hello/Main.java")], check=True)
    upload = os.path.join(out, "upload")
    os.makedirs(upload, exist_ok=True)
    subprocess.run(["jar", "--create", "--file", os.path.join(upload, "hello.jar"), "--main-class", "hello.Main",
                    "-C", classes, "."], check=True)
    return upload, None


def bare_argv(plan, port, folder, slipway_bin):
    """The plan's start command as the sandbox would run it, but bare: bwrap with only a mount
    namespace (the folder read-only at /app, a fresh /tmp), on the host's loopback."""
    start = plan["start"]
    if start["kind"] == "static":
        argv = [slipway_bin, "serve-static", "--root", "/app/" + start["root"].lstrip("/"), "--port", str(port)]
        if start["spa_fallback"]:
            argv.append("--spa")
    else:
        argv = start["argv"]
    env = {"HOME": "/tmp", "LANG": "C.UTF-8", "HOST": "127.0.0.1",
           "PATH": "/app/.venv/bin:/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin"}
    env.update(plan.get("env", {}))
    if plan.get("port_env"):
        env[plan["port_env"]] = str(port)
    wrapped = ["bwrap", "--dev-bind", "/", "/", "--ro-bind", folder, "/app", "--tmpfs", "/tmp", "--chdir", "/app",
               "--die-with-parent", "--clearenv"]
    for key, value in env.items():
        wrapped += ["--setenv", key, value]
    return wrapped + ["--", *argv]


def time_bare_boot(argv, port, timeout=60.0):
    """Milliseconds from starting `argv` to its first HTTP answer on `port` (connects every 0.5 ms)."""
    start = time.perf_counter()
    child = PROCESSES.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"bare start exited with {child.returncode}: {argv}")
            if ms_since(start) > timeout * 1000:
                raise RuntimeError(f"bare start did not answer within {timeout} s: {argv}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    if sock.recv(64):
                        return ms_since(start)
            except OSError:
                time.sleep(0.0005)
    finally:
        PROCESSES.stop(child, timeout=30)


def without_fast_start(folder, workdir, template):
    """A copy of a built folder with the template's fast-start artefacts removed (timestamps kept, so
    jars and sources look exactly as built), and what was removed; None when the template has none."""
    copy = os.path.join(workdir, f"without-fast-start-{template}")
    if os.path.exists(copy):
        shutil.rmtree(copy)
    shutil.copytree(folder, copy, symlinks=True)
    removed = []
    for root, dirs, files in os.walk(copy):
        if "__pycache__" in dirs:
            shutil.rmtree(os.path.join(root, "__pycache__"))
            dirs.remove("__pycache__")
            removed.append("__pycache__")
    for artefact in [".slipway/app.jsa", ".slipway/node-compile-cache"]:
        path = os.path.join(copy, artefact)
        if os.path.isdir(path):
            shutil.rmtree(path)
            removed.append(artefact)
        elif os.path.exists(path):
            os.remove(path)
            removed.append(artefact)
    if not removed:
        shutil.rmtree(copy)
        return None, []
    return copy, sorted(set(removed))


def wake_section(workdir, results):
    slipway = Slipway(workdir, "wake")
    slipway.up()
    results["wake"] = {}
    deploys = {}
    for template in TEMPLATES:
        folder, reason = prepare_example(template, workdir)
        if folder is None:
            results["wake"][template] = {"skipped": reason}
            log(f"wake: {template} skipped: {reason}")
            continue
        name = f"wake-{template}"
        slipway.cli("projects", "create", name, "--template", template)
        deploys[template] = (name, subprocess.Popen([SLIPWAY, "deploy", name, folder], env=slipway.env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for template, (name, child) in deploys.items():
        output = child.communicate(timeout=900)[0].decode(errors="replace")
        if child.returncode != 0:
            results["wake"][template] = {"skipped": f"deploy failed: {output[-600:]}"}
            log(f"wake: {template} deploy failed:\n{output[-2000:]}")
    try:
        for template, (name, _) in deploys.items():
            if "skipped" in results["wake"].get(template, {}) or "wake" not in SECTIONS:
                continue
            log(f"wake: {template} ({SAMPLES} samples per tier)")
            results["wake"][template] = measure_wakes(slipway, template, name, workdir)
        if "burst" in SECTIONS:
            burst_section(slipway, deploys, results)
    finally:
        slipway.down()


def measure_wakes(slipway, template, name, workdir):
    host = f"{name}.localhost"
    port = slipway.gateway_port
    deadline = time.monotonic() + 120
    while http_get(port, host)[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} does not answer 200 through the gateway")
        time.sleep(0.2)
    folder, plan = slipway.live_revision(name)
    build_log = slipway.build_log(name)
    bare_port = free_port()
    argv = bare_argv(plan, bare_port, folder, SLIPWAY)

    warm = [http_get(port, host)[1] for _ in range(SAMPLES)]
    app_boot, stopped_client, stopped_records = [], [], []
    for _ in range(SAMPLES):
        app_boot.append(time_bare_boot(argv, bare_port))
        slipway.cli("sleep", name)
        status, elapsed = http_get(port, host)
        if status != 200:
            raise RuntimeError(f"{name}: a wake answered {status}")
        record = slipway.status(name)["wakes"][0]
        if record["tier"] != "stopped":
            raise RuntimeError(f"{name}: the newest wake is {record}")
        stopped_client.append(elapsed)
        stopped_records.append(record)
    frozen_client, frozen_records = [], []
    for _ in range(SAMPLES):
        slipway.cli("sleep", name, "--freeze")
        status, elapsed = http_get(port, host)
        if status != 200:
            raise RuntimeError(f"{name}: a thaw answered {status}")
        record = slipway.status(name)["wakes"][0]
        if record["tier"] != "frozen":
            raise RuntimeError(f"{name}: the newest wake is {record}")
        frozen_client.append(elapsed)
        frozen_records.append(record)

    boot_p50 = stats.percentile(app_boot, 50)
    phase = lambda records, key: stats.summary([r[key] for r in records])
    result = {
        "start": plan["start"],
        "warm_request_ms": stats.summary(warm),
        "app_boot_ms": stats.summary(app_boot),
        "stopped": {
            "client_ms": stats.summary(stopped_client),
            "platform_overhead_ms": stats.summary([c - boot_p50 for c in stopped_client]),
            "record_spawn_ms": phase(stopped_records, "spawn_ms"),
            "record_listening_ms": phase(stopped_records, "listening_ms"),
            "record_first_byte_ms": phase(stopped_records, "first_byte_ms"),
            "record_total_ms": phase(stopped_records, "total_ms"),
            "client_minus_record_ms": stats.summary([c - r["total_ms"] for c, r in zip(stopped_client, stopped_records)]),
        },
        "frozen": {
            "client_ms": stats.summary(frozen_client),
            "record_thaw_ms": phase(frozen_records, "total_ms"),
            "client_minus_warm_p50_ms": stats.summary([c - stats.percentile(warm, 50) for c in frozen_client]),
        },
        "fast_start": fast_start(template, folder, plan, build_log, workdir, bare_port),
    }
    return result


def fast_start(template, folder, plan, build_log, workdir, bare_port):
    """App boot with and without the template's fast-start artefacts, interleaved sample by sample."""
    notes = [line.strip() for line in build_log.splitlines() if "fast start" in line.lower()]
    copy, removed = without_fast_start(folder, workdir, template)
    if copy is None:
        return {"applies": False, "build_log": notes,
                "note": "no fast-start artefact in the built folder" if template not in ("static", "vite")
                else "served by the platform's static server: nothing of the app's own starts"}
    with_argv = bare_argv(plan, bare_port, folder, SLIPWAY)
    without_argv = bare_argv(plan, bare_port, copy, SLIPWAY)
    with_boot, without_boot = [], []
    for _ in range(SAMPLES):
        with_boot.append(time_bare_boot(with_argv, bare_port))
        without_boot.append(time_bare_boot(without_argv, bare_port))
    shutil.rmtree(copy)
    saved = stats.percentile(without_boot, 50) - stats.percentile(with_boot, 50)
    return {"applies": True, "artefacts": removed, "build_log": notes,
            "app_boot_with_ms": stats.summary(with_boot), "app_boot_without_ms": stats.summary(without_boot),
            "p50_saved_ms": round(saved, 3),
            "p50_ratio_with_to_without": round(stats.percentile(with_boot, 50) / stats.percentile(without_boot, 50), 3)}


# ---------------------------------------------------------------------------------------------
# burst


def burst_section(slipway, deploys, results):
    # The Node app: its own boot (npm, then Express) is the longest of the interpreted templates
    # but one, so requests pile up while it wakes.
    template = "node" if "node" in deploys and "skipped" not in results["wake"].get("node", {}) else next(iter(deploys))
    name = deploys[template][0]
    log(f"burst: {BURST} concurrent requests to {name} while it is stopped")
    slipway.cli("sleep", name)
    barrier = threading.Barrier(BURST)
    outcomes = [None] * BURST

    def one(idx):
        barrier.wait()
        try:
            outcomes[idx] = http_get(slipway.gateway_port, f"{name}.localhost", timeout=60)
        except OSError as error:
            outcomes[idx] = (f"error: {error}", None)

    threads = [threading.Thread(target=one, args=(idx,)) for idx in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    answered = [elapsed for status, elapsed in outcomes if status == 200]
    failures = [status for status, _ in outcomes if status != 200]
    by_status = {}
    for status in failures:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    record = slipway.status(name)["wakes"][0]
    results["burst"] = {
        "app": name, "requests": BURST, "failures": len(failures), "failures_by_status": by_status,
        "failure_ratio": round(len(failures) / BURST, 4),
        "answered_ms": stats.summary(answered),
        "all_ms": stats.summary([e for _, e in outcomes if e is not None]),
        "wake_record": record,
    }


# ---------------------------------------------------------------------------------------------
# gateway


NGINX_UPSTREAM = """daemon off;
worker_processes 1;
pid {dir}/upstream.pid;
error_log {dir}/upstream-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    keepalive_requests 1000000;
    location / {{ default_type text/plain; return 200 "Hello from the upstream\\n"; }}
  }}
}}
"""

# nginx configured to do what the gateway does: HTTP/1.1 keep-alive to the upstream with a pool,
# the Host passed on and X-Forwarded-* set.
NGINX_PROXY = """daemon off;
worker_processes {workers};
pid {dir}/proxy.pid;
error_log {dir}/proxy-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    keepalive_requests 1000000;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
    }}
  }}
}}
"""


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")
            time.sleep(0.05)


def wrk(port, connections, threads):
    done = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{WRK_SECONDS}s", "--latency",
                           "-H", "Host: bench.localhost", f"http://127.0.0.1:{port}/"],
                          capture_output=True, timeout=WRK_SECONDS + 60)
    return stats.parse_wrk(done.stdout.decode())


def gateway_section(workdir, results):
    if shutil.which("wrk") is None or not os.path.exists("/usr/sbin/nginx"):
        results["gateway"] = {"skipped": "nginx or wrk not installed (bench/setup.sh installs them)"}
        return
    directory = os.path.join(workdir, "nginx")
    os.makedirs(os.path.join(directory, "tmp"), exist_ok=True)
    upstream_port, proxy_port, gateway_port = free_port(), free_port(), free_port()
    workers = os.cpu_count() or 1
    with open(os.path.join(directory, "upstream.conf"), "w") as f:
        f.write(NGINX_UPSTREAM.format(dir=directory, port=upstream_port))
    with open(os.path.join(directory, "proxy.conf"), "w") as f:
        f.write(NGINX_PROXY.format(dir=directory, port=proxy_port, upstream=upstream_port, workers=workers))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = [
        PROCESSES.start(["/usr/sbin/nginx", "-p", directory, "-c", os.path.join(directory, "upstream.conf")], **quiet),
        PROCESSES.start(["/usr/sbin/nginx", "-p", directory, "-c", os.path.join(directory, "proxy.conf")], **quiet),
        PROCESSES.start([GATEWAY_BENCH, f"127.0.0.1:{gateway_port}", f"127.0.0.1:{upstream_port}", "bench"], **quiet),
    ]
    try:
        for port in (upstream_port, proxy_port, gateway_port):
            wait_port(port)
        targets = {"direct": upstream_port, "gateway": gateway_port, "nginx": proxy_port}
        for port in targets.values():
            status, _ = http_get(port, "bench.localhost")
            if status != 200:
                raise RuntimeError(f"127.0.0.1:{port} answered {status}")
        runs = {"loaded": {t: [] for t in targets}, "single": {t: [] for t in targets}}
        for round_idx in range(WRK_ROUNDS):
            log(f"gateway: round {round_idx + 1} of {WRK_ROUNDS}")
            for target, port in targets.items():
                runs["loaded"][target].append(wrk(port, WRK_CONNECTIONS, 2))
                runs["single"][target].append(wrk(port, 1, 1))
    finally:
        for child in started:
            PROCESSES.stop(child)

    def median(values):
        return stats.percentile(values, 50)

    def condense(mode):
        out = {}
        for target, rounds in runs[mode].items():
            out[target] = {
                "requests_per_sec": round(median([r["requests_per_sec"] for r in rounds]), 1),
                "requests": sum(r["requests"] or 0 for r in rounds),
                "errors": sum(r["errors"] for r in rounds),
                "p50_ms": round(median([r["latency_ms"]["p50"] for r in rounds]), 4),
                "p99_ms": round(median([r["latency_ms"]["p99"] for r in rounds]), 4),
                "rounds": rounds,
            }
        out["ratio_gateway_to_nginx"] = round(out["gateway"]["requests_per_sec"] / out["nginx"]["requests_per_sec"], 3)
        out["added_p99_ms"] = {proxy: round(out[proxy]["p99_ms"] - out["direct"]["p99_ms"], 4) for proxy in ("gateway", "nginx")}
        out["added_p50_ms"] = {proxy: round(out[proxy]["p50_ms"] - out["direct"]["p50_ms"], 4) for proxy in ("gateway", "nginx")}
        return out

    results["gateway"] = {
        "compared": "wrk -> nginx upstream (return 200) directly, through orchestrator::gateway::Gateway "
                    "(TableResolver + TcpConnector, examples/gateway_bench.rs), and through nginx proxy_pass with "
                    f"keepalive; {workers} nginx workers, tokio's default {workers} gateway workers; medians of "
                    f"{WRK_ROUNDS} rounds of {WRK_SECONDS} s",
        "loaded": dict(condense("loaded"), connections=WRK_CONNECTIONS, threads=2),
        "single_connection": dict(condense("single"), connections=1, threads=1),
    }


# ---------------------------------------------------------------------------------------------
# scale


def static_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", "<!doctype html><title>hello</title><p>Hello from a benchmark project.</p>\n")
    return buffer.getvalue()


def rss_kb(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def scale_section(workdir, results):
    metrics_port = free_port()
    probe = Slipway(workdir, "scale")
    metrics_line = f'metrics_addr = "127.0.0.1:{metrics_port}"'
    metrics_configurable = probe.accepts(metrics_line)
    slipway = Slipway(workdir, "scale", extra_top=metrics_line if metrics_configurable else "")
    slipway.up()
    zip_bytes = static_zip()
    names = [f"p{idx:04d}" for idx in range(PROJECTS)]
    awake = set(names[:AWAKE])
    deadline = time.monotonic() + SCALE_DEPLOY_BUDGET
    failures = []

    def deploy_one(name):
        if time.monotonic() > deadline:
            return "budget"
        status, body = slipway.api("POST", "/projects", {"name": name, "template": "static"})
        if status != 201:
            return f"create {status}: {body}"
        status, body = slipway.api("POST", f"/projects/{name}/deployments", zip_bytes, "application/zip")
        if status != 202:
            return f"upload {status}: {body}"
        while time.monotonic() < deadline + 60:
            status, body = slipway.api("GET", f"/projects/{name}/status")
            if status == 200 and body.get("state") == "running":
                break
            time.sleep(0.2)
        else:
            return "not running in time"
        if name not in awake:
            status, body = slipway.api("POST", f"/projects/{name}/sleep", {"freeze": False})
            if status != 200:
                return f"sleep {status}: {body}"
        return None

    started = time.monotonic()
    try:
        log(f"scale: deploying {PROJECTS} static projects ({AWAKE} stay awake)")
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for name, outcome in zip(names, pool.map(deploy_one, names)):
                if outcome:
                    failures.append((name, outcome))
        deploy_seconds = time.monotonic() - started
        deployed = PROJECTS - len(failures)
        # RSS while the awake apps are being visited, one sample every 200 ms.
        rss_samples = []
        awake_list = sorted(awake)
        for idx in range(max(SAMPLES, 30)):
            http_get(slipway.gateway_port, f"{awake_list[idx % len(awake_list)]}.localhost")
            rss_samples.append(rss_kb(slipway.child.pid) / 1024.0)
            time.sleep(0.2)
        running = sum(1 for name in awake_list if slipway.api("GET", f"/projects/{name}/status")[1].get("state") == "running")
        tick = autoscaler_tick(metrics_port if metrics_configurable else 9100, metrics_configurable)
        children_rss = {}
        for pid_file, label in [("postgres/postmaster.pid", "postgres (postmaster only)"), ("run/redis.pid", "redis")]:
            path = os.path.join(slipway.data_dir, pid_file)
            if os.path.exists(path):
                pid = int(open(path).readline())
                children_rss[label] = round(rss_kb(pid) / 1024.0, 1)
        results["scale"] = {
            "projects_requested": PROJECTS, "projects_deployed": deployed, "awake": running,
            "deploy_failures": failures[:20], "deploy_seconds": round(deploy_seconds, 1),
            "deploys_per_second": round(deployed / deploy_seconds, 2) if deploy_seconds else None,
            "rss_mb": dict(stats.summary(rss_samples), max=round(max(rss_samples), 1)),
            "peak_rss_mb": round(rss_kb(slipway.child.pid, "VmHWM") / 1024.0, 1),
            "other_processes_rss_mb": children_rss,
            "autoscaler_tick": tick,
        }
    finally:
        slipway.down()


def autoscaler_tick(port, configured):
    """p50/p99 of `slipway_autoscaler_tick_seconds` from the metrics listener, once it holds at least
    30 ticks; None with a note when the listener or the metric is absent."""
    source = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + TICK_WAIT
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode(errors="replace")
            conn.close()
        except OSError as error:
            return {"p50_ms": None, "p99_ms": None, "source": source,
                    "note": f"not measured: no metrics listener ({error}); "
                            f"{'metrics_addr was set' if configured else 'this build does not accept metrics_addr'}"}
        buckets = stats.histogram_from_exposition(text, "slipway_autoscaler_tick_seconds")
        if buckets is None:
            return {"p50_ms": None, "p99_ms": None, "source": source,
                    "note": "not measured: the metrics have no slipway_autoscaler_tick_seconds histogram"}
        count = buckets[-1][1]
        if count >= 30 or time.monotonic() > deadline:
            p50 = stats.histogram_quantile(0.5, buckets)
            p99 = stats.histogram_quantile(0.99, buckets)
            return {"n": count, "p50_ms": None if p50 is None or count < 30 else round(p50 * 1000, 3),
                    "p99_ms": None if p99 is None or count < 30 else round(p99 * 1000, 3), "source": source,
                    "note": "estimated from histogram buckets (Prometheus histogram_quantile)"
                            + ("" if count >= 30 else f"; only {count} ticks: not reported")}
        time.sleep(2)


# ---------------------------------------------------------------------------------------------
# report


def report(results):
    rows = []
    targets = []
    for template, entry in results.get("wake", {}).items():
        if "skipped" in entry:
            rows.append([f"wake {template}", "skipped", entry["skipped"][:60], "", "", ""])
            continue
        stopped = entry["stopped"]
        rows.append([f"wake {template} from stopped", stats.fmt(stopped["client_ms"]["p50"], "ms"),
                     stats.fmt(stopped["client_ms"]["p99"], "ms"), stats.fmt(entry["app_boot_ms"]["p50"], "ms"),
                     stats.fmt(stopped["platform_overhead_ms"]["p50"], "ms"),
                     stats.fmt(stopped["platform_overhead_ms"]["p99"], "ms")])
        frozen = entry["frozen"]
        rows.append([f"wake {template} from frozen", stats.fmt(frozen["client_ms"]["p50"], "ms"),
                     stats.fmt(frozen["client_ms"]["p99"], "ms"), "-", stats.fmt(frozen["record_thaw_ms"]["p50"], "ms"),
                     stats.fmt(frozen["record_thaw_ms"]["p99"], "ms")])
        targets.append([f"wake {template}: platform overhead p50 <= 20 ms",
                        stats.fmt(stopped["platform_overhead_ms"]["p50"], "ms"),
                        stats.verdict(stopped["platform_overhead_ms"]["p50"], 20)])
        targets.append([f"wake {template}: thaw p50 <= 5 ms (client)", stats.fmt(frozen["client_ms"]["p50"], "ms"),
                        stats.verdict(frozen["client_ms"]["p50"], 5)])
    lines = []
    if rows:
        lines.append("Wakes (client-side time of the request; app boot = bare start to first answer;\n"
                     "overhead = wake - app boot p50; for frozen: the thaw as the wake record times it)")
        lines.append(stats.table(["figure", "p50", "p99", "app boot p50", "overhead p50", "overhead p99"], rows))
        phase_rows = []
        for template, entry in results["wake"].items():
            if "skipped" in entry:
                continue
            s = entry["stopped"]
            phase_rows.append([template, stats.fmt(s["record_spawn_ms"]["p50"], "ms"),
                               stats.fmt(s["record_listening_ms"]["p50"], "ms"),
                               stats.fmt(s["record_first_byte_ms"]["p50"], "ms"),
                               stats.fmt(s["client_minus_record_ms"]["p50"], "ms"),
                               stats.fmt(entry["warm_request_ms"]["p50"], "ms")])
        lines.append("\nWake phases from `slipway status --json` (p50): spawn, listening, first byte; the rest the\n"
                     "client saw (gateway, proxying, new connection); a warm request for comparison")
        lines.append(stats.table(["template", "spawn", "listening", "first byte", "client - record", "warm request"],
                                 phase_rows))
        fast_rows = []
        for template, entry in results["wake"].items():
            fast = entry.get("fast_start")
            if not fast:
                continue
            if fast["applies"]:
                fast_rows.append([template, ", ".join(fast["artefacts"]), stats.fmt(fast["app_boot_with_ms"]["p50"], "ms"),
                                  stats.fmt(fast["app_boot_without_ms"]["p50"], "ms"), stats.fmt(fast["p50_saved_ms"], "ms")])
            else:
                fast_rows.append([template, "none: " + fast["note"][:50], "-", "-", "-"])
        lines.append("\nFast starts: app boot p50 with and without the build's artefacts")
        lines.append(stats.table(["template", "artefacts", "with", "without", "saved"], fast_rows))
    gateway = results.get("gateway")
    if gateway and "skipped" not in gateway:
        rows = []
        for mode, label in [("loaded", f"{gateway['loaded']['connections']} connections"), ("single_connection", "1 connection")]:
            g = gateway[mode]
            for target in ("direct", "gateway", "nginx"):
                rows.append([f"{target}, {label}", stats.fmt(g[target]["requests_per_sec"]), stats.fmt(g[target]["p50_ms"], "ms"),
                             stats.fmt(g[target]["p99_ms"], "ms"), g[target]["errors"]])
        lines.append("\nGateway against nginx (wrk, medians of rounds)")
        lines.append(stats.table(["path", "requests/s", "p50", "p99", "errors"], rows))
        for mode in ("loaded", "single_connection"):
            g = gateway[mode]
            targets.append([f"gateway/nginx requests/s >= 0.9 ({mode})", stats.fmt(g["ratio_gateway_to_nginx"]),
                            stats.verdict(g["ratio_gateway_to_nginx"], 0.9, higher_is_better=True)])
            targets.append([f"gateway added p99 <= 1 ms ({mode}; nginx adds {stats.fmt(g['added_p99_ms']['nginx'], 'ms')})",
                            stats.fmt(g["added_p99_ms"]["gateway"], "ms"), stats.verdict(g["added_p99_ms"]["gateway"], 1)])
    elif gateway:
        lines.append(f"\nGateway: skipped: {gateway['skipped']}")
    burst = results.get("burst")
    if burst:
        targets.append([f"burst of {burst['requests']} to a stopped app: failures = 0", str(burst["failures"]),
                        stats.verdict(burst["failures"], 0)])
        targets.append([f"burst: p99 of answered requests", stats.fmt(burst["answered_ms"]["p99"], "ms"), "(no target)"])
    scale = results.get("scale")
    if scale:
        targets.append([f"RSS of slipway up, {scale['projects_deployed']} projects, {scale['awake']} awake (p50) <= 150 MB",
                        stats.fmt(scale["rss_mb"]["p50"], "MB"), stats.verdict(scale["rss_mb"]["p50"], 150)])
        tick = scale["autoscaler_tick"]
        targets.append(["autoscaler tick p50 <= 5 ms", stats.fmt(tick["p50_ms"], "ms"), stats.verdict(tick["p50_ms"], 5)])
    lines.append("\nAgainst the targets")
    lines.append(stats.table(["target", "measured", "verdict"], targets))
    return "\n".join(lines)


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for tool, args in [("node", ["--version"]), ("python3", ["--version"]), ("java", ["-version"]), ("go", ["version"]),
                       ("/usr/sbin/nginx", ["-v"]), ("wrk", ["--version"])]:
        if shutil.which(tool):
            done = subprocess.run([tool, *args], capture_output=True)
            versions[os.path.basename(tool)] = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()[0]
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "memory_mb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024), "tools": versions}


def main():
    for binary in [SLIPWAY] + ([GATEWAY_BENCH] if "gateway" in SECTIONS else []):
        if not os.path.exists(binary):
            sys.exit(f"bench: {binary} is missing; `make bench` builds it")
    workdir = tempfile.mkdtemp(prefix="slipway-bench-", dir=os.environ.get("BENCH_WORKDIR"))
    # The private PostgreSQL runs as the `postgres` user, which must reach the data dir.
    os.chmod(workdir, 0o755)
    results = {"machine": machine(), "settings": {"samples": SAMPLES, "burst": BURST, "projects": PROJECTS, "awake": AWAKE,
                                                  "wrk_seconds": WRK_SECONDS, "wrk_rounds": WRK_ROUNDS,
                                                  "sections": SECTIONS, "templates": TEMPLATES}}
    started = time.monotonic()
    try:
        if "wake" in SECTIONS or "burst" in SECTIONS:
            wake_section(workdir, results)
        if "gateway" in SECTIONS:
            gateway_section(workdir, results)
        if "scale" in SECTIONS:
            scale_section(workdir, results)
    finally:
        PROCESSES.stop_all()
        results["duration_seconds"] = round(time.monotonic() - started, 1)
        results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(OUT, "w") as f:
            json.dump(results, f, indent=2)
        if KEEP:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(results)
    results_table = os.path.splitext(OUT)[0] + ".txt"
    with open(results_table, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"results in {OUT} and {results_table} ({results['duration_seconds']} s)")


if __name__ == "__main__":
    main()
