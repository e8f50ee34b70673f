#!/usr/bin/env python3
"""bench/service-client.py: the HTTP side of bench/service.sh (stdlib only).

  service-client.py URL TOKEN submit VOLUME:MODE...   job ids, one a line
  service-client.py URL TOKEN wait TIMEOUT ID...      until all are final
  service-client.py URL TOKEN run TIMEOUT VOLUME:MODE...
                                                      submit, then wait
  service-client.py URL TOKEN round ID...             created -> finished, s
  service-client.py URL TOKEN running N TIMEOUT       until N jobs run

submit sends all its requests at once; round reads the jobs' own records,
so the time counts neither this script nor its polling. run is submit and
wait in one process: a second Python start (~0.1 s of CPU here) would run
while the jobs do, on the 2 cores they share.
"""

import concurrent.futures
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

FINAL = {"succeeded", "failed", "cancelled"}


def call(url, token, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as e:
        sys.exit(f"service-client: {req.method} {path}: {e.code} {e.read().decode(errors='replace')}")


def submit(url, token, specs):
    def one(spec):
        volume, mode = spec.split(":")
        return call(url, token, "/api/v1/backups", {"volume": volume, "mode": mode})["id"]

    with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
        ids = list(pool.map(one, specs))
    for job_id in ids:
        print(job_id, flush=True)
    return ids


def wait(url, token, timeout, ids):
    deadline = time.monotonic() + float(timeout)
    pending = list(ids)
    while pending:
        job = call(url, token, f"/api/v1/jobs/{pending[0]}")
        if job["state"] in FINAL:
            if job["state"] != "succeeded":
                sys.exit(f"service-client: job {job['id']} {job['state']}: {job.get('error')}")
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            sys.exit(f"service-client: job {pending[0]} did not finish within {timeout} s")
        time.sleep(0.2)


def round_time(url, token, ids):
    jobs = [call(url, token, f"/api/v1/jobs/{i}") for i in ids]
    start = min(j["created_at"] for j in jobs)
    end = max(j["finished_at"] for j in jobs)
    print(f"{end - start:.3f}")


def running(url, token, count, timeout):
    deadline = time.monotonic() + float(timeout)
    while len(call(url, token, "/api/v1/jobs?state=running")) < int(count):
        if time.monotonic() > deadline:
            sys.exit(f"service-client: {count} jobs were not running within {timeout} s")
        time.sleep(0.05)


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    url, token, command, args = argv[1].rstrip("/"), argv[2], argv[3], argv[4:]
    if command == "submit":
        submit(url, token, args)
    elif command == "wait":
        wait(url, token, args[0], args[1:])
    elif command == "run":
        wait(url, token, args[0], submit(url, token, args[1:]))
    elif command == "round":
        round_time(url, token, args)
    elif command == "running":
        running(url, token, args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
