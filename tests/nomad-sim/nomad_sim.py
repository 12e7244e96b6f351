#!/usr/bin/env python3
"""A Nomad simulator for Slipway's tests: a small HTTP server that speaks the parts of Nomad's
HTTP API that Slipway and Traefik's Nomad provider use, with the documented behaviour and traps
(see ../../orchestrator/tests/fixtures/README.md and the team's hashistack reference).

It is NOT Nomad: nothing is scheduled or run. Allocations are records that move through
pending -> running (healthy) on timers; services are registered for running allocations at
127.0.0.1 and a port the test chooses (POST /_sim/port), so a real Traefik can route to a real
loopback upstream. Only loopback addresses are ever used.

What it serves (Go field names, integer nanoseconds, text/plain errors):
  POST /v1/jobs, POST /v1/job/:id          register (400 decode errors, 500 validation errors)
  GET  /v1/jobs, GET /v1/job/:id           list, read (blocking: ?index=&wait=)
  DELETE /v1/job/:id[?purge=true]          stop or purge
  GET  /v1/job/:id/allocations             allocation stubs (blocking)
  GET  /v1/allocation/:id                  one allocation
  GET  /v1/job/:id/deployment              latest deployment or null
  GET/POST /v1/job/:id/scale               scale status / scale (the active-deployment trap)
  GET  /v1/services, GET /v1/service/:name native service discovery (Traefik's Nomad provider)
  POST /v1/client/allocation/:id/signal    {"Task","Signal"} -> {"Index"}
  GET  /v1/client/fs/logs/:id              concatenated JSON frames, base64 Data, {} heartbeats
  GET  /v1/client/fs/cat/:id?path=         a file of the allocation directory (a build's result)
  GET  /v1/client/allocation/:id/exec      WebSocket exec: frames, close codes 1008/1011
Test controls (not Nomad): POST /_sim/port {"Job","Port"}, GET /_sim/requests (every request
body received, for contract tests), POST /_sim/fail {"Status","Body","Times"} (inject errors),
GET /_sim/env/:alloc (the task's environment: the job's Env plus the rendered env templates),
GET /_sim/exec-frames (every frame exec clients sent, parsed: {"Alloc","Frame"}).

Batch jobs (builds): no deployment; the allocation fetches its artifacts (checksums checked, a
failure fails it), does NOT run the command, and completes with the fetched ZIP's files packed as
tar.gz at alloc/data/build.tar.gz (read with fs/cat). An image build job (BuildKit's
`buildctl-daemonless.sh` with `--output type=image,name=REF,push=true`) instead pushes that
tar.gz as the one layer of a stand-in OCI image to REF's registry, which must be on loopback (a
real registry, e.g. Debian's docker-registry); a failed push fails the task. BuildKit is not run.

Secrets: with --vault-addr and --vault-token, a task whose job has a `Vault` block and env
templates (`Envvars: true`) renders them from that Vault/OpenBao before it starts, as Nomad's
template runner does; a missing secret keeps the task pending ("Missing: vault.read(...)"). Only
the form `render_job` emits is understood (`{{ with secret "PATH" }}NAME={{ .Data.data.value |
toJSON }}` lines), read with the given token: the workload-identity login is NOT simulated, and
any other template text fails the task. Without --vault-addr such tasks stay pending.

Usage: nomad_sim.py [--port 0] [--token SECRET] [--deploy-seconds 0.5] [--start-seconds 0.1]
                    [--vault-addr http://127.0.0.1:8200 --vault-token TOKEN]
Prints "listening 127.0.0.1:PORT" on stdout once it accepts connections.
"""

import argparse
import base64
import hashlib
import io
import json
import re
import socket
import struct
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NS = 1_000_000_000
DURATION_KEYS = {
    "MinHealthyTime", "HealthyDeadline", "ProgressDeadline", "Interval", "Timeout", "Delay",
    "MaxDelay", "KillTimeout", "TTL", "ShutdownDelay", "Stagger", "Splay", "Grace",
}
SIGNALS = {"SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM", "SIGSTOP", "SIGCONT", "SIGUSR1", "SIGUSR2"}


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def now_ns():
    return time.time_ns()


class Cluster:
    """All state, behind one lock; `changed` wakes blocking queries."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.index = 10
        self.jobs = {}          # (namespace, id) -> job dict (canonical)
        self.allocs = {}        # alloc id -> alloc dict
        self.deployments = {}   # (namespace, id) -> list of deployments
        self.ports = {}         # job id -> host port of its service
        self.requests = []      # every request: method, path, query, body
        self.exec_frames = []   # every exec client frame: alloc id, parsed JSON
        self.failures = []      # injected failures
        self.node_id = str(uuid.uuid4())

    def bump(self):
        self.index += 1
        self.changed.notify_all()
        return self.index

    # --- time-driven state: called under the lock before every read ------------------------
    def advance(self):
        moment = time.monotonic()
        changed = False
        for alloc in self.allocs.values():
            if alloc["DesiredStatus"] == "run" and alloc["ClientStatus"] == "pending" and moment >= alloc["_start_at"]:
                if alloc["JobType"] == "batch":
                    self.run_batch(alloc)
                    alloc["ModifyIndex"] = self.index + 1
                    changed = True
                    continue
                if not self.render_templates(alloc):
                    continue
                alloc["ClientStatus"] = "running"
                alloc["ClientDescription"] = "Tasks are running"
                state = next(iter(alloc["TaskStates"].values()))
                state["State"] = "running"
                state["StartedAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
                state["Events"].append(event("Started", "Task started by client"))
                alloc["_logs"].append(("stdout", "listening on 8080\n"))
                alloc["ModifyIndex"] = self.index + 1
                changed = True
            if alloc["ClientStatus"] == "running" and alloc["DeploymentStatus"] is not None \
                    and alloc["DeploymentStatus"]["Healthy"] is None and moment >= alloc["_healthy_at"]:
                alloc["DeploymentStatus"]["Healthy"] = True
                alloc["DeploymentStatus"]["Timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                alloc["ModifyIndex"] = self.index + 1
                changed = True
        for (key, deployments) in self.deployments.items():
            latest = deployments[-1]
            if latest["Status"] == "running" and moment >= latest["_done_at"]:
                job = self.jobs.get(key)
                healthy = [a for a in self.running_allocs(key) if a["ClientStatus"] == "running"
                           and (a["DeploymentStatus"] is None or a["DeploymentStatus"]["Healthy"])]
                group = latest["TaskGroups"]["web"]
                group["HealthyAllocs"] = len(healthy)
                group["PlacedAllocs"] = len([a for a in self.allocs.values() if a["DeploymentID"] == latest["ID"]])
                if job is None or len(healthy) >= group["DesiredTotal"]:
                    latest["Status"] = "successful"
                    latest["StatusDescription"] = "Deployment completed successfully"
                    latest["ModifyIndex"] = self.index + 1
                    changed = True
        if changed:
            self.bump()

    def render_templates(self, alloc):
        """The task's env templates, rendered from Vault before the task starts (see the module
        doc for the subset understood). True when the task may start."""
        if "_env" in alloc:
            return True
        job = self.jobs.get((alloc["Namespace"], alloc["JobID"]))
        task = job["TaskGroups"][0]["Tasks"][0] if job else {}
        env = dict(task.get("Env") or {})
        templates = [t for t in task.get("Templates") or [] if t.get("Envvars")]
        problem = None
        for template in templates:
            if task.get("Vault") is None:
                problem = "template reads secrets but the task has no vault block"
                break
            rendered, problem = render_env_template(template.get("EmbeddedTmpl") or "", self.args.vault_addr, self.args.vault_token)
            if problem:
                break
            env.update(rendered)
        if problem:
            events = next(iter(alloc["TaskStates"].values()))["Events"]
            if not events or events[-1]["DisplayMessage"] != problem:
                events.append(event("Template", problem))
                alloc["ModifyIndex"] = self.index + 1
            return False
        alloc["_env"] = env
        return True

    def run_batch(self, alloc):
        """A batch task (a build): fetches its artifacts as go-getter does (checksum checked), does
        NOT run the task's command, and leaves the fetched source packed as tar.gz at
        alloc/data/build.tar.gz, then completes. A download or checksum failure fails the task."""
        job = self.jobs.get((alloc["Namespace"], alloc["JobID"]))
        task = job["TaskGroups"][0]["Tasks"][0]
        state = alloc["TaskStates"][task["Name"]]
        files = {}
        for artifact in task.get("Artifacts") or []:
            try:
                with urllib.request.urlopen(artifact["GetterSource"], timeout=10) as response:
                    data = response.read()
            except (OSError, ValueError) as e:
                return self.fail_batch(alloc, state, "Failed Artifact Download", "failed to download artifact: %s" % e)
            wanted = (artifact.get("GetterOptions") or {}).get("checksum", "")
            if wanted.startswith("sha256:") and hashlib.sha256(data).hexdigest() != wanted[len("sha256:"):]:
                return self.fail_batch(alloc, state, "Failed Artifact Download", "checksums did not match")
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    for name in archive.namelist():
                        if not name.endswith("/"):
                            files[name] = archive.read(name)
            except zipfile.BadZipFile:
                return self.fail_batch(alloc, state, "Failed Artifact Download", "the artifact is not a zip archive")
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w:gz") as tar:
            for name, data in sorted(files.items()):
                info = tarfile.TarInfo("./" + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        pushed = image_push_target(task)
        if pushed is not None:
            problem = push_stand_in_image(pushed, packed.getvalue())
            if problem:
                return self.fail_batch(alloc, state, "Driver Failure", problem)
            alloc["_logs"].append(("stdout", "simulated image build: %d source files fetched, BuildKit was not run; "
                                   "the packed context was pushed as a stand-in image to %s\n" % (len(files), pushed)))
        else:
            alloc["_files"] = {"alloc/data/build.tar.gz": packed.getvalue()}
            alloc["_logs"].append(("stdout", "simulated build: %d source files fetched; the build steps were not run\n" % len(files)))
        alloc["ClientStatus"] = "complete"
        alloc["ClientDescription"] = "All tasks have completed"
        state["State"] = "dead"
        state["Events"].append(event("Started", "Task started by client"))
        state["Events"].append(event("Terminated", "Exit Code: 0"))

    def fail_batch(self, alloc, state, kind, message):
        alloc["ClientStatus"] = "failed"
        alloc["ClientDescription"] = "Failed tasks"
        state["State"] = "dead"
        state["Failed"] = True
        state["Events"].append(event(kind, message))
        alloc["_logs"].append(("stderr", message + "\n"))

    # --- jobs ---------------------------------------------------------------------------------
    def register(self, body, url_id=None):
        if not isinstance(body, dict) or body.get("Job") is None:
            raise HttpError(400, "Job must be specified")
        job = body["Job"]
        if not isinstance(job, dict):
            raise HttpError(400, "json: cannot unmarshal into Go struct field JobRegisterRequest.Job of type api.Job")
        check_decodable(job, "Job")
        if not job.get("ID"):
            raise HttpError(400, "Job ID hasn't been provided")
        if url_id is not None and url_id != job["ID"]:
            raise HttpError(400, "Job ID does not match name")
        job = canonicalize(json.loads(json.dumps(job)))
        validate(job)
        key = (job["Namespace"], job["ID"])
        old = self.jobs.get(key)
        preserve = bool(body.get("PreserveCounts"))
        if body.get("EnforceIndex") and (old["JobModifyIndex"] if old else 0) != body.get("JobModifyIndex", 0):
            raise HttpError(500, "Enforcing job modify index %d: job exists with conflicting job modify index: %d"
                            % (body.get("JobModifyIndex", 0), old["JobModifyIndex"] if old else 0))
        index = self.bump()
        group = job["TaskGroups"][0]
        if old is not None and preserve and not old["Stop"]:
            group["Count"] = old["TaskGroups"][0]["Count"]
        job["Version"] = 0 if old is None else old["Version"] + 1
        job["CreateIndex"] = index if old is None else old["CreateIndex"]
        job["ModifyIndex"] = index
        job["JobModifyIndex"] = index
        job["SubmitTime"] = now_ns()
        job["Status"] = "pending" if group["Count"] > 0 else "dead"
        self.jobs[key] = job
        eval_id = str(uuid.uuid4())
        # A new version replaces every allocation: old ones stop, new ones are placed.
        for alloc in self.job_allocs(key):
            if alloc["DesiredStatus"] == "run":
                self.stop_alloc(alloc, "alloc is being updated due to job update")
        self.start_deployment(key, job, group["Count"])
        self.place(key, job, group["Count"], eval_id)
        return {"EvalID": eval_id, "EvalCreateIndex": index, "JobModifyIndex": index, "Warnings": "",
                "Index": index, "LastContact": 0, "KnownLeader": False, "NextToken": ""}

    def job_allocs(self, key):
        return [a for a in self.allocs.values() if (a["Namespace"], a["JobID"]) == key]

    def running_allocs(self, key):
        return [a for a in self.job_allocs(key) if a["DesiredStatus"] == "run"]

    def start_deployment(self, key, job, count):
        if job["Type"] != "service" or job.get("Update", {}).get("MaxParallel", 1) == 0:
            return None
        deployment = {
            "ID": str(uuid.uuid4()), "Namespace": job["Namespace"], "JobID": job["ID"], "JobVersion": job["Version"],
            "JobModifyIndex": job["JobModifyIndex"], "JobCreateIndex": job["CreateIndex"], "Status": "running",
            "StatusDescription": "Deployment is running",
            "TaskGroups": {"web": {"AutoRevert": True, "Promoted": False, "DesiredTotal": count, "DesiredCanaries": 0,
                                   "PlacedAllocs": 0, "HealthyAllocs": 0, "UnhealthyAllocs": 0,
                                   "RequireProgressBy": None, "ProgressDeadline": 300 * NS}},
            "CreateIndex": self.index, "ModifyIndex": self.index, "CreateTime": now_ns(), "ModifyTime": now_ns(),
            "_done_at": time.monotonic() + self.args.deploy_seconds,
        }
        self.deployments.setdefault(key, []).append(deployment)
        return deployment

    def place(self, key, job, count, eval_id):
        deployment = (self.deployments.get(key) or [None])[-1]
        in_deployment = deployment is not None and deployment["Status"] == "running"
        existing = self.running_allocs(key)
        for n in range(len(existing), count):
            alloc_id = str(uuid.uuid4())
            start_at = time.monotonic() + self.args.start_seconds
            self.allocs[alloc_id] = {
                "ID": alloc_id, "EvalID": eval_id, "Name": "%s.%s[%d]" % (job["ID"], job["TaskGroups"][0]["Name"], n), "Namespace": job["Namespace"],
                "NodeID": self.node_id, "NodeName": "sim-client-1", "JobID": job["ID"], "JobType": job["Type"],
                "JobVersion": job["Version"], "TaskGroup": job["TaskGroups"][0]["Name"], "DesiredStatus": "run", "DesiredDescription": "",
                "ClientStatus": "pending", "ClientDescription": "No tasks have started", "DesiredTransition": {},
                "TaskStates": {job["TaskGroups"][0]["Tasks"][0]["Name"]: {"State": "pending", "Failed": False, "Restarts": 0, "LastRestart": None,
                                       "StartedAt": None, "FinishedAt": None,
                                       "Events": [event("Received", "Task received by client"),
                                                  event("Task Setup", "Building Task Directory"),
                                                  event("Driver", "Downloading image")]}},
                "DeploymentID": deployment["ID"] if in_deployment else "",
                "DeploymentStatus": {"Healthy": None, "Timestamp": None, "Canary": False, "ModifyIndex": self.index}
                if in_deployment else None,
                "FollowupEvalID": "", "NextAllocation": "", "RescheduleTracker": None,
                "CreateIndex": self.index, "ModifyIndex": self.index, "CreateTime": now_ns(), "ModifyTime": now_ns(),
                "_start_at": start_at, "_healthy_at": start_at + self.args.start_seconds,
                "_logs": [("stdout", "revision %s starting\n" % job.get("Meta", {}).get("slipway.revision", "?"))],
                "_signals": [],
            }

    def stop_alloc(self, alloc, why):
        alloc["DesiredStatus"] = "stop"
        alloc["DesiredDescription"] = why
        alloc["ClientStatus"] = "complete"
        alloc["ClientDescription"] = "All tasks have completed"
        state = next(iter(alloc["TaskStates"].values()))
        state["State"] = "dead"
        state["FinishedAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        state["Events"].append(event("Killing", "Sent interrupt"))
        state["Events"].append(event("Killed", "Task successfully killed"))
        alloc["ModifyIndex"] = self.index

    def scale(self, key, body):
        job = self.jobs.get(key)
        if job is None:
            raise HttpError(404, 'job "%s" not found' % key[1])
        if not isinstance(body, dict):
            raise HttpError(400, "Request decode failed")
        target = body.get("Target") or {}
        group_name = target.get("Group")
        if not group_name:
            raise HttpError(400, "missing task group name for scaling action")
        if target.get("Job") not in (None, key[1]):
            raise HttpError(400, "job ID in payload did not match URL")
        group = next((g for g in job["TaskGroups"] if g["Name"] == group_name), None)
        if group is None:
            raise HttpError(400, 'task group "%s" specified for scaling does not exist in job' % group_name)
        count = body.get("Count")
        if body.get("Error") and count is not None:
            raise HttpError(400, "scaling action should not contain count if error is true")
        scaling = group.get("Scaling")
        if count is not None:
            if not isinstance(count, int) or count < 0:
                raise HttpError(400, "scaling action count can't be negative")
            if scaling is not None:
                if count < scaling["Min"]:
                    raise HttpError(400, "group count was less than scaling policy minimum: %d < %d" % (count, scaling["Min"]))
                if count > scaling["Max"]:
                    raise HttpError(400, "group count was greater than scaling policy maximum: %d > %d" % (count, scaling["Max"]))
            latest = (self.deployments.get(key) or [None])[-1]
            if latest is not None and latest["Status"] == "running":
                raise HttpError(400, "job scaling blocked due to active deployment")
        index = self.bump()
        eval_id = ""
        group.setdefault("_events", []).append({
            "Time": now_ns(), "Count": count, "PreviousCount": group["Count"], "Message": body.get("Message", ""),
            "Error": bool(body.get("Error")), "Meta": body.get("Meta"), "EvalID": None, "CreateIndex": index})
        if count is not None and count != group["Count"]:
            eval_id = str(uuid.uuid4())
            group["_events"][-1]["EvalID"] = eval_id
            previous = group["Count"]
            group["Count"] = count
            job["ModifyIndex"] = index
            job["JobModifyIndex"] = index
            job["Version"] += 1
            job["Status"] = "running" if count > 0 else "dead"
            running = self.running_allocs(key)
            if count < previous:
                for alloc in running[count:]:
                    self.stop_alloc(alloc, "alloc not needed due to job update")
            self.start_deployment(key, job, count)
            self.place(key, job, count, eval_id)
        return {"EvalID": eval_id, "EvalCreateIndex": index if eval_id else 0, "JobModifyIndex": job["JobModifyIndex"],
                "Warnings": "", "Index": index, "LastContact": 0, "KnownLeader": False, "NextToken": ""}

    def scale_status(self, key):
        job = self.jobs.get(key)
        if job is None:
            raise HttpError(404, "job not found")
        groups = {}
        for group in job["TaskGroups"]:
            allocs = [a for a in self.job_allocs(key) if a["TaskGroup"] == group["Name"] and a["DesiredStatus"] == "run"]
            groups[group["Name"]] = {
                "Desired": group["Count"], "Placed": len(allocs),
                "Running": len([a for a in allocs if a["ClientStatus"] == "running"]),
                "Healthy": len([a for a in allocs if a["DeploymentStatus"] and a["DeploymentStatus"]["Healthy"] is True]),
                "Unhealthy": len([a for a in allocs if a["DeploymentStatus"] and a["DeploymentStatus"]["Healthy"] is False]),
                "Events": list(reversed(group.get("_events", []))) or None}
        return {"JobID": job["ID"], "Namespace": job["Namespace"], "JobCreateIndex": job["CreateIndex"],
                "JobModifyIndex": job["JobModifyIndex"], "JobStopped": job["Stop"], "TaskGroups": groups}

    def delete(self, key, purge):
        job = self.jobs.get(key)
        if job is None:
            raise HttpError(404, "job not found")
        index = self.bump()
        for alloc in self.running_allocs(key):
            self.stop_alloc(alloc, "alloc is being stopped due to job stop")
        if purge:
            del self.jobs[key]
            for alloc_id in [a["ID"] for a in self.job_allocs(key)]:
                del self.allocs[alloc_id]
        else:
            job["Stop"] = True
            job["Status"] = "dead"
            job["ModifyIndex"] = index
            job["JobModifyIndex"] = index
        return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index, "JobModifyIndex": index, "VolumeEvalID": "",
                "VolumeEvalIndex": 0, "Index": index, "LastContact": 0, "KnownLeader": False, "NextToken": ""}

    # --- services -------------------------------------------------------------------------
    def registrations(self, namespace):
        out = []
        for alloc in self.allocs.values():
            if alloc["Namespace"] != namespace or alloc["DesiredStatus"] != "run" or alloc["ClientStatus"] != "running":
                continue
            job = self.jobs.get((alloc["Namespace"], alloc["JobID"]))
            if job is None:
                continue
            for group in job["TaskGroups"]:
                for service in group.get("Services") or []:
                    if service.get("Provider") != "nomad":
                        continue
                    port = self.ports.get(job["ID"], 20000 + (int(alloc["ID"][:4], 16) % 10000))
                    out.append({
                        "Address": "127.0.0.1", "AllocID": alloc["ID"], "CreateIndex": alloc["ModifyIndex"],
                        "Datacenter": job["Datacenters"][0], "ID": "_nomad-task-%s-group-%s-%s-%s" % (
                            alloc["ID"], group["Name"], service["Name"], service["PortLabel"]),
                        "JobID": job["ID"], "ModifyIndex": alloc["ModifyIndex"], "Namespace": alloc["Namespace"],
                        "NodeID": alloc["NodeID"], "Port": port, "ServiceName": service["Name"],
                        "Tags": service.get("Tags") or []})
        return out

    def alloc(self, alloc_id, namespace=None):
        alloc = self.allocs.get(alloc_id)
        if alloc is None:
            # Nomad accepts a unique prefix of an allocation ID.
            matches = [a for i, a in self.allocs.items() if len(alloc_id) >= 8 and i.startswith(alloc_id)]
            alloc = matches[0] if len(matches) == 1 else None
        if alloc is None:
            raise HttpError(404, "alloc not found")
        return alloc


SECRET_LINE = re.compile(r'\{\{ with secret "([^"]+)" \}\}([A-Za-z_][A-Za-z0-9_]*)=\{\{ \.Data\.data\.value \| toJSON \}\}\n\{\{ end \}\}')


def render_env_template(text, vault_addr, vault_token):
    """Renders the secret lines `render_job` writes; returns ({NAME: value}, None) or (None, why)."""
    if not vault_addr:
        return None, "vault is not configured in the simulator (--vault-addr)"
    rendered, position = {}, 0
    while position < len(text):
        m = SECRET_LINE.match(text, position)
        if not m:
            return None, "template: unsupported in the simulator at offset %d" % position
        path, name = m.group(1), m.group(2)
        request = urllib.request.Request("%s/v1/%s" % (vault_addr.rstrip("/"), path), headers={"X-Vault-Token": vault_token})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None, "Missing: vault.read(%s)" % path
            return None, "vault.read(%s): %d" % (path, e.code)
        except OSError as e:
            return None, "vault.read(%s): %s" % (path, e)
        value = ((data.get("data") or {}).get("data") or {}).get("value")
        if value is None:
            return None, "Missing: vault.read(%s)" % path
        # toJSON writes a JSON string; go-envparse reads the quoted value back unchanged.
        rendered[name] = json.loads(json.dumps(value))
        position = m.end()
    return rendered, None


def event(kind, message):
    return {"Type": kind, "Time": now_ns(), "DisplayMessage": message, "Details": {}, "Message": "", "FailsTask": False}


def check_decodable(value, path):
    """Go's decoder refuses a string where a time.Duration (int64) is expected."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key in DURATION_KEYS and child is not None and not isinstance(child, int):
                if isinstance(child, float) and child == int(child):
                    continue
                raise HttpError(400, "json: cannot unmarshal %s into Go struct field %s.%s of type time.Duration"
                                % (type(child).__name__.replace("str", "string"), path, key))
            if key not in ("Config", "Env", "Meta", "GetterOptions"):
                check_decodable(child, path + "." + key)
    elif isinstance(value, list):
        for child in value:
            check_decodable(child, path)


def image_push_target(task):
    """The image a BuildKit image build job pushes (`--output type=image,name=REF,push=true`), or
    None for any other batch task."""
    config = task.get("Config") or {}
    if config.get("entrypoint") != ["buildctl-daemonless.sh"]:
        return None
    args = config.get("args") or []
    for flag, value in zip(args, args[1:]):
        if flag == "--output":
            options = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
            if options.get("type") == "image" and options.get("push") == "true":
                return options.get("name")
    return None


def push_stand_in_image(reference, layer):
    """Pushes an OCI image whose one layer is the packed build context to the registry named in
    `reference` (`HOST:PORT/path:tag`) with the registry's HTTP API v2: what BuildKit's push leaves,
    minus a real build. Only loopback registries are reached. Returns a problem, or None."""
    registry, _, rest = reference.partition("/")
    name, _, tag = rest.rpartition(":")
    host = registry.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost"):
        return "the simulator pushes only to a loopback registry, not %s" % registry
    base = "http://%s/v2/%s" % (registry, name)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    try:
        descriptors = []
        for (media_type, blob) in (("application/vnd.oci.image.config.v1+json", config),
                                   ("application/vnd.oci.image.layer.v1.tar+gzip", layer)):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            start = urllib.request.Request(base + "/blobs/uploads/", method="POST", data=b"")
            with urllib.request.urlopen(start, timeout=10) as response:
                location = response.headers["Location"]
            if location.startswith("/"):
                location = "http://%s%s" % (registry, location)
            upload = urllib.request.Request(location + ("&" if "?" in location else "?") + "digest=" + digest,
                                            method="PUT", data=blob, headers={"Content-Type": "application/octet-stream"})
            urllib.request.urlopen(upload, timeout=10).close()
            descriptors.append({"mediaType": media_type, "digest": digest, "size": len(blob)})
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": descriptors[0], "layers": descriptors[1:]}).encode()
        put = urllib.request.Request(base + "/manifests/" + tag, method="PUT", data=manifest,
                                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        urllib.request.urlopen(put, timeout=10).close()
    except (OSError, ValueError, KeyError) as e:
        return "failed to push %s: %s" % (reference, e)
    return None


def canonicalize(job):
    """What the agent fills in for omitted fields (api/jobs.go Canonicalize, hashistack §2)."""
    job = {k: v for k, v in job.items() if v is not None}
    job.setdefault("Type", "service")
    job.setdefault("Name", job["ID"])
    job.setdefault("Namespace", "default")
    job.setdefault("Region", "global")
    job.setdefault("Datacenters", ["*"])
    job.setdefault("Priority", 50)
    job.setdefault("Meta", {})
    job["Stop"] = bool(job.get("Stop"))
    if job["Type"] == "service":
        update = job.get("Update") or {}
        for key, default in (("MaxParallel", 1), ("HealthCheck", "checks"), ("MinHealthyTime", 10 * NS),
                             ("HealthyDeadline", 300 * NS), ("ProgressDeadline", 600 * NS), ("AutoRevert", False),
                             ("Canary", 0), ("Stagger", 30 * NS), ("AutoPromote", False)):
            if update.get(key) is None:
                update[key] = default
        job["Update"] = update
    for group in job.get("TaskGroups") or []:
        scaling = group.get("Scaling")
        if group.get("Count") is None:
            group["Count"] = scaling["Min"] if scaling and scaling.get("Min") is not None else 1
        if scaling is not None:
            if scaling.get("Min") is None:
                scaling["Min"] = group["Count"]
            scaling.setdefault("Enabled", True)
            scaling.setdefault("Type", "horizontal")
            scaling["Target"] = {"Namespace": job["Namespace"], "Job": job["ID"], "Group": group["Name"]}
            scaling.setdefault("Policy", None)
            scaling["ID"] = str(uuid.uuid4())
        restart = group.get("RestartPolicy") or {}
        for key, default in (("Attempts", 2), ("Interval", 1800 * NS), ("Delay", 15 * NS), ("Mode", "fail")):
            if restart.get(key) is None:
                restart[key] = default
        group["RestartPolicy"] = restart
        for task in group.get("Tasks") or []:
            for template in task.get("Templates") or []:
                template.setdefault("ChangeMode", "restart")
            if task.get("Vault") is not None and task["Vault"].get("Env") is None:
                task["Vault"]["Env"] = True
    return job


def validate(job):
    """Job.Register validation: failures are 500 with a multierror text (hashistack §1, §14.2)."""
    problems = []
    if job["Type"] not in ("service", "batch", "system", "sysbatch"):
        problems.append('Invalid job type: "%s"' % job["Type"])
    groups = job.get("TaskGroups") or []
    if not groups:
        problems.append("Missing job task groups")
    for group in groups:
        group_problems = []
        if not group.get("Name"):
            group_problems.append("Missing task group name")
        scaling = group.get("Scaling")
        if scaling is not None:
            if scaling["Max"] is None or scaling["Max"] < 0:
                group_problems.append("Scaling policy invalid: maximum count must be specified and non-negative")
            elif scaling["Min"] > scaling["Max"]:
                group_problems.append("Scaling policy invalid: maximum count must not be less than minimum count")
            if group["Count"] < scaling["Min"]:
                group_problems.append("Scaling policy invalid: task group count must not be less than minimum count in scaling policy")
            if scaling["Max"] is not None and group["Count"] > scaling["Max"]:
                group_problems.append("Scaling policy invalid: task group count must not be greater than maximum count in scaling policy")
        if not group.get("Tasks"):
            group_problems.append("Missing tasks for task group")
        for service in group.get("Services") or []:
            name = service.get("Name") or ""
            if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
                group_problems.append('Service name must be valid per RFC 1123 and can contain only alphanumeric characters or dashes: "%s"' % name)
            if service.get("Provider", "consul") == "nomad":
                for check in service.get("Checks") or []:
                    if check.get("Type") not in ("http", "tcp"):
                        group_problems.append('Service %s: check type "%s" not supported by the nomad provider' % (name, check.get("Type")))
        for task in group.get("Tasks") or []:
            if not task.get("Driver"):
                group_problems.append('Task %s validation failed: Missing task driver' % task.get("Name"))
            resources = task.get("Resources") or {}
            if resources.get("MemoryMB") is not None and resources["MemoryMB"] < 10:
                group_problems.append("Task %s validation failed: minimum MemoryMB value is 10; got %d" % (task.get("Name"), resources["MemoryMB"]))
            for template in task.get("Templates") or []:
                if template.get("Envvars") and template.get("ChangeMode") == "signal":
                    group_problems.append("Task %s validation failed: cannot use signals with env var templates" % task.get("Name"))
        if group_problems:
            problems.append("Task group %s validation failed: %s" % (group.get("Name"), multierror(group_problems)))
    if problems:
        raise HttpError(500, multierror(problems))


def multierror(items):
    return "%d error%s occurred:\n%s\n\n" % (len(items), "" if len(items) == 1 else "s", "\n".join("\t* " + i for i in items))


def job_stub(job):
    group = job["TaskGroups"][0]
    return {"ID": job["ID"], "ParentID": "", "Name": job["Name"], "Namespace": job["Namespace"],
            "Datacenters": job["Datacenters"], "Multiregion": None, "Type": job["Type"], "Priority": job["Priority"],
            "Periodic": False, "ParameterizedJob": False, "Stop": job["Stop"], "Status": job["Status"],
            "StatusDescription": "", "JobSummary": {"JobID": job["ID"], "Namespace": job["Namespace"],
                                                   "Summary": {group["Name"]: {}}, "Children": None,
                                                   "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"]},
            "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"], "JobModifyIndex": job["JobModifyIndex"],
            "SubmitTime": job["SubmitTime"], "Meta": job.get("Meta")}


def public(value):
    """Drops the simulator's private keys (leading underscore)."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def alloc_stub(alloc):
    keys = ["ID", "EvalID", "Name", "Namespace", "NodeID", "NodeName", "JobID", "JobType", "JobVersion", "TaskGroup",
            "DesiredStatus", "DesiredDescription", "ClientStatus", "ClientDescription", "DesiredTransition",
            "TaskStates", "DeploymentStatus", "FollowupEvalID", "NextAllocation", "RescheduleTracker",
            "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime"]
    return public({k: alloc[k] for k in keys})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cluster = None  # set in main

    def log_message(self, fmt, *args):
        pass

    # --- plumbing ---------------------------------------------------------------------------
    def send_text(self, status, text, content_type="text/plain; charset=utf-8", headers=None):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, value, index=None):
        c = self.cluster
        headers = {"X-Nomad-Index": str(index if index is not None else c.index), "X-Nomad-KnownLeader": "true",
                   "X-Nomad-LastContact": "0"}
        self.send_text(200, json.dumps(value), "application/json", headers)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return raw

    def token(self):
        token = self.headers.get("X-Nomad-Token")
        if not token:
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("Bearer "):
                token = auth[len("Bearer "):]
        return token

    def authorize(self, token=None):
        expected = self.cluster.args.token
        if not expected:
            return
        token = token if token is not None else self.token()
        if not token:
            raise HttpError(403, "Permission denied")
        if token != expected:
            raise HttpError(403, "ACL token not found")

    def blocking(self, query, read):
        """Runs `read` (under the lock), waiting while the index is not past ?index= (?wait=)."""
        c = self.cluster
        wanted = int(query.get("index", ["0"])[0] or 0)
        wait = parse_wait(query.get("wait", [None])[0])
        deadline = time.monotonic() + wait
        with c.lock:
            while True:
                c.advance()
                if wanted == 0 or c.index > wanted or time.monotonic() >= deadline:
                    return read(), c.index
                c.changed.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))

    def handle_any(self, method):
        c = self.cluster
        url = urlparse(self.path)
        query = parse_qs(url.query)
        path = url.path
        raw = self.read_body() if method in ("POST", "PUT", "DELETE") else b""
        record = {"Method": method, "Path": path, "Query": url.query, "Body": None}
        if raw:
            try:
                record["Body"] = json.loads(raw)
            except ValueError:
                record["Body"] = raw.decode(errors="replace")
        if not path.startswith("/_sim/"):
            with c.lock:
                c.requests.append(record)
        try:
            if path.startswith("/_sim/"):
                return self.control(method, path, raw)
            with c.lock:
                if c.failures:
                    failure = c.failures[0]
                    failure["Times"] -= 1
                    if failure["Times"] <= 0:
                        c.failures.pop(0)
                    raise HttpError(failure["Status"], failure["Body"])
            if path.endswith("/exec") and path.startswith("/v1/client/allocation/"):
                return self.exec_socket(path, query)
            self.authorize()
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise HttpError(400, "Request decode failed: %s" % e)
            return self.route(method, path, query, body)
        except HttpError as e:
            self.send_text(e.status, e.message)

    def control(self, method, path, raw):
        c = self.cluster
        body = json.loads(raw) if raw else None
        with c.lock:
            if path == "/_sim/port" and method == "POST":
                c.ports[body["Job"]] = int(body["Port"])
                c.bump()
                return self.send_json({})
            if path == "/_sim/requests":
                return self.send_json(c.requests)
            if path == "/_sim/exec-frames":
                return self.send_json(c.exec_frames)
            if path.startswith("/_sim/env/") and method == "GET":
                c.advance()
                alloc = c.alloc(path[len("/_sim/env/"):])
                return self.send_json(alloc.get("_env"))
            if path == "/_sim/fail" and method == "POST":
                c.failures.append({"Status": body["Status"], "Body": body["Body"], "Times": body.get("Times", 1)})
                return self.send_json({})
        raise HttpError(404, "Invalid URL")

    def route(self, method, path, query, body):
        c = self.cluster
        ns = query.get("namespace", ["default"])[0]
        m = re.fullmatch(r"/v1/job/([^/]+)(/[a-z]+)?", path)
        if path == "/v1/jobs":
            if method == "POST":
                with c.lock:
                    return self.send_json(c.register(body))
            if method == "GET":
                prefix = query.get("prefix", [""])[0]
                value, index = self.blocking(query, lambda: [job_stub(j) for (n, i), j in sorted(c.jobs.items())
                                                              if n == ns and i.startswith(prefix)])
                return self.send_json(value, index)
            raise HttpError(405, "Invalid method")
        if m:
            job_id, tail = m.group(1), m.group(2)
            key = (ns, job_id)
            if tail is None:
                if method in ("POST", "PUT"):
                    with c.lock:
                        return self.send_json(c.register(body, url_id=job_id))
                if method == "DELETE":
                    with c.lock:
                        return self.send_json(c.delete(key, query.get("purge", ["false"])[0] == "true"))
                if method == "GET":
                    def read():
                        job = c.jobs.get(key)
                        if job is None:
                            raise HttpError(404, "job not found")
                        return public(job)
                    value, index = self.blocking(query, read)
                    return self.send_json(value, index)
            if tail == "/allocations" and method == "GET":
                def read():
                    if key not in c.jobs and not c.job_allocs(key):
                        return []
                    return [alloc_stub(a) for a in sorted(c.job_allocs(key), key=lambda a: a["CreateIndex"])]
                value, index = self.blocking(query, read)
                return self.send_json(value, index)
            if tail == "/scale":
                if method == "POST":
                    with c.lock:
                        c.advance()
                        return self.send_json(c.scale(key, body))
                if method == "GET":
                    value, index = self.blocking(query, lambda: c.scale_status(key))
                    return self.send_json(value, index)
            if tail == "/deployment" and method == "GET":
                value, index = self.blocking(query, lambda: public((c.deployments.get(key) or [None])[-1]))
                return self.send_json(value, index)
            if tail == "/deployments" and method == "GET":
                value, index = self.blocking(query, lambda: public(list(reversed(c.deployments.get(key) or []))))
                return self.send_json(value, index)
            raise HttpError(405 if tail in ("/allocations", "/scale", "/deployment") else 404, "Invalid method" if tail else "Invalid URL")
        m = re.fullmatch(r"/v1/allocation/([^/]+)", path)
        if m and method == "GET":
            def read():
                alloc = c.alloc(m.group(1))
                full = alloc_stub(alloc)
                full["Job"] = public(c.jobs.get((alloc["Namespace"], alloc["JobID"])))
                port = c.ports.get(alloc["JobID"], 0)
                full["AllocatedResources"] = {"Shared": {"Ports": [{"Label": "http", "Value": port, "To": 8080, "HostIP": "127.0.0.1"}]}}
                return full
            value, index = self.blocking(query, read)
            return self.send_json(value, index)
        if path == "/v1/services" and method == "GET":
            def read():
                names = {}
                for reg in c.registrations(ns):
                    names.setdefault(reg["ServiceName"], set()).update(reg["Tags"])
                if not names:
                    return []
                return [{"Namespace": ns, "Services": [{"ServiceName": n, "Tags": sorted(t)} for n, t in sorted(names.items())]}]
            value, index = self.blocking(query, read)
            return self.send_json(value, index)
        m = re.fullmatch(r"/v1/service/([^/]+)", path)
        if m and method == "GET":
            wanted_tag = None
            flt = query.get("filter", [None])[0]
            if flt:
                fm = re.fullmatch(r'Tags contains "([^"]*)"', flt.strip())
                if not fm:
                    raise HttpError(400, "failed to read filter expression: unsupported in the simulator: %s" % flt)
                wanted_tag = fm.group(1)
            value, index = self.blocking(query, lambda: [r for r in c.registrations(ns) if r["ServiceName"] == m.group(1)
                                                         and (wanted_tag is None or wanted_tag in r["Tags"])])
            return self.send_json(value, index)
        m = re.fullmatch(r"/v1/client/allocation/([^/]+)/signal", path)
        if m and method in ("POST", "PUT"):
            with c.lock:
                alloc = c.alloc(m.group(1))
                signal = (body or {}).get("Signal") or ""
                task = (body or {}).get("Task") or ""
                if task and task not in alloc["TaskStates"]:
                    raise HttpError(500, 'Failed to signal task: %s, err: Task not running' % task)
                if alloc["ClientStatus"] != "running":
                    raise HttpError(500, "Failed to signal task: %s, err: Task not running" % (task or "app"))
                if signal.upper() not in SIGNALS:
                    raise HttpError(500, 'Failed to signal task: %s, err: invalid signal "%s"' % (task or "app", signal))
                alloc["_signals"].append(signal.upper())
                next(iter(alloc["TaskStates"].values()))["Events"].append(event("Signaling", "Task being sent signal " + signal.upper()))
                alloc["ModifyIndex"] = c.bump()
                return self.send_json({"Index": c.index})
        m = re.fullmatch(r"/v1/client/fs/logs/([^/]+)", path)
        if m and method == "GET":
            return self.logs(m.group(1), query)
        m = re.fullmatch(r"/v1/client/fs/cat/([^/]+)", path)
        if m and method == "GET":
            with c.lock:
                c.advance()
                alloc = c.alloc(m.group(1))
                wanted = query.get("path", [""])[0].lstrip("/")
                data = (alloc.get("_files") or {}).get(wanted)
            if data is None:
                raise HttpError(404, "file not found: %s" % wanted)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        raise HttpError(404, "Invalid URL")

    def logs(self, alloc_id, query):
        c = self.cluster
        task = query.get("task", [""])[0]
        kind = query.get("type", [""])[0]
        if not task:
            raise HttpError(400, "must include task name")
        if kind not in ("stdout", "stderr"):
            raise HttpError(400, "must include type: stdout or stderr")
        follow = query.get("follow", ["false"])[0] == "true"
        plain = query.get("plain", ["false"])[0] == "true"
        with c.lock:
            c.advance()
            alloc = c.alloc(alloc_id)
            text = "".join(t for (k, t) in alloc["_logs"] if k == kind)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if plain else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        data = text.encode()
        if plain:
            if data:
                chunk(data)
        else:
            # Frames are concatenated with no separator (hashistack §9); a heartbeat first.
            chunk(b"{}")
            if data:
                chunk(json.dumps({"Offset": len(data), "Data": base64.b64encode(data).decode(),
                                  "File": "alloc/logs/%s.%s.0" % (task, kind)}).encode())
        if follow:
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                time.sleep(0.5)
                try:
                    chunk(b"{}")
                except OSError:
                    return
        self.wfile.write(b"0\r\n\r\n")

    # --- WebSocket exec ------------------------------------------------------------------------
    def exec_socket(self, path, query):
        c = self.cluster
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            raise HttpError(400, "websocket: the client is not using the websocket protocol")
        origin = self.headers.get("Origin")
        if origin and urlparse(origin).netloc != self.headers.get("Host"):
            raise HttpError(403, "websocket: request origin not allowed by Upgrader.CheckOrigin")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        sock = WebSocket(self.rfile, self.wfile)
        # Nomad upgrades first, then authenticates and validates: failures are close frames.
        token = self.token()
        if query.get("ws_handshake", ["false"])[0] == "true":
            first = sock.recv()
            try:
                token = json.loads(first or "{}").get("auth_token") or token
            except ValueError:
                return sock.close(1008, "invalid handshake")
        try:
            self.authorize(token)
        except HttpError as e:
            return sock.close(1008, e.message)
        alloc_id = path.split("/")[4]
        task = query.get("task", [""])[0]
        if not task:
            return sock.close(1008, "must provide task name")
        try:
            command = json.loads(query.get("command", [""])[0])
            if not isinstance(command, list) or not command:
                raise ValueError
        except ValueError:
            return sock.close(1008, "failed to parse command: must be a non-empty JSON array")
        with c.lock:
            c.advance()
            alloc = c.allocs.get(alloc_id)
            if alloc is None:
                return sock.close(1008, "alloc not found")
            if task not in alloc["TaskStates"]:
                return sock.close(1008, "task not found")
            if alloc["ClientStatus"] != "running":
                return sock.close(1008, "task is not running")
        # The simulated program: `cat` echoes stdin to stdout until stdin closes; `exit N`
        # (the last word of the command) exits at once with code N.
        last = command[-1]
        if re.fullmatch(r"exit \d+", last):
            return self.exited(sock, int(last.split()[1]))
        while True:
            text = sock.recv()
            if text is None:
                return
            try:
                frame = json.loads(text)
            except ValueError:
                return sock.close(1011, "invalid frame")
            with c.lock:
                c.exec_frames.append({"Alloc": alloc_id, "Frame": frame})
            stdin = frame.get("stdin") or {}
            if stdin.get("data"):
                data = base64.b64decode(stdin["data"])
                for start in range(0, len(data), 1024):
                    sock.send(json.dumps({"stdout": {"data": base64.b64encode(data[start:start + 1024]).decode()}}))
            if stdin.get("close"):
                sock.send(json.dumps({"stdout": {"close": True}}))
                return self.exited(sock, 0)

    def exited(self, sock, code):
        result = {} if code == 0 else {"exit_code": code}
        sock.send(json.dumps({"exited": True, "result": result}))
        # Nomad drops the connection without a close handshake (the client sees 1006).
        sock.drop()

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")


class WebSocket:
    """The server side of RFC 6455, text frames only."""

    def __init__(self, rfile, wfile):
        self.rfile = rfile
        self.wfile = wfile

    def recv(self):
        while True:
            header = self.rfile.read(2)
            if len(header) < 2:
                return None
            opcode = header[0] & 0x0F
            length = header[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if header[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 0x8:
                return None
            if opcode == 0x9:
                self.frame(0xA, payload)
                continue
            if opcode in (0x1, 0x2):
                return payload.decode()

    def frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([len(payload)])
        elif len(payload) < 65536:
            header += bytes([126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([127]) + struct.pack(">Q", len(payload))
        self.wfile.write(header + payload)
        self.wfile.flush()

    def send(self, text):
        self.frame(0x1, text.encode())

    def close(self, code, reason):
        self.frame(0x8, struct.pack(">H", code) + reason.encode()[:120])

    def drop(self):
        try:
            self.wfile.flush()
        finally:
            pass


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up on a blocking query (a cancelled wait) is routine, not an error."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def parse_wait(text):
    if not text:
        return 300.0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    if not m:
        raise HttpError(400, "Invalid wait time")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]
    return min(value, 300.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="", help="require this ACL token")
    parser.add_argument("--deploy-seconds", type=float, default=0.5, help="how long a deployment stays active")
    parser.add_argument("--start-seconds", type=float, default=0.1, help="pending -> running, and running -> healthy")
    parser.add_argument("--vault-addr", default="", help="render env templates from this Vault/OpenBao")
    parser.add_argument("--vault-token", default="", help="the token the simulator reads secrets with")
    args = parser.parse_args()
    Handler.cluster = Cluster(args)
    server = QuietServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
