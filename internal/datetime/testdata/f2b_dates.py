# Reference side of TestAgainstFail2ban: runs fail2ban's own DateDetector over
# the given lines for each datepattern and prints the results as JSON.
# Input (stdin, JSON): {"now": epoch, "config_dir": ..., "logs_dir": ...,
#                       "extra_patterns": [...], "extra_lines": [...]}
import json, os, re, sys, time

# the same IANA zone the Go side uses (fail2ban's own tests use the POSIX
# string CET-01CEST-02,M3.5.0,M10.5.0, identical for the sample years)
os.environ['TZ'] = 'Europe/Zurich'
time.tzset()

from fail2ban.server.mytime import MyTime
from fail2ban.server.datedetector import DateDetector
from fail2ban.client.filterreader import FilterReader

req = json.load(sys.stdin)
MyTime.setAlternateNow(req["now"])
MyTime.setTime(req["now"])

# datepattern values of the stock filters (as fail2ban's reader computes them)
patterns = ["", "{^LN-BEG}"]
fdir = os.path.join(req["config_dir"], "filter.d")
for fn in sorted(os.listdir(fdir)):
    if not fn.endswith(".conf") or fn.endswith("common.conf"):
        continue
    for opts in ({}, {"logtype": "rfc5424"}, {"logtype": "short"}, {"logtype": "file"}):
        try:
            fr = FilterReader(fn[:-5], "j", dict(opts), basedir=req["config_dir"])
            if not fr.read():
                continue
            fr.getOptions({})
            for c in fr.convert():
                if len(c) >= 4 and c[2] == "datepattern" and c[3] not in patterns:
                    patterns.append(c[3])
        except Exception:
            pass
for p in req["extra_patterns"]:
    if p not in patterns:
        patterns.append(p)

files = []
for root, dirs, names in os.walk(req["logs_dir"]):
    dirs.sort()
    for n in sorted(names):
        path = os.path.join(root, n)
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        lines = [l.rstrip("\r") for l in text.split("\n")]
        lines = [l for l in lines if l.strip()]
        files.append({"name": os.path.relpath(path, req["logs_dir"]), "lines": lines})
files.append({"name": "<synthetic>", "lines": req["extra_lines"]})


def detector(p):
    dd = DateDetector()
    if p == "":
        dd.addDefaultTemplate()
    else:
        for x in [x.strip() for x in re.split("\n+", p)]:
            if x:
                dd.appendTemplate(x)
    if not dd.templates:
        dd.addDefaultTemplate()  # what matchTime does on its first call
    for t in dd.templates:
        t.template.hits = 0
        t.template._compileRegex()  # a broken pattern is a configuration error
    return dd


cases = []
templates = {}
for pi, p in enumerate(patterns):
    try:
        dd = detector(p)
    except Exception as e:
        cases.append({"p": pi, "error": str(e)})
        continue
    templates[pi] = [[t.name, t.regex, t.template.flags] for t in dd.templates]
    for fi, f in enumerate(files):
        dd = detector(p)
        res = []
        for line in f["lines"]:
            try:
                m, tpl = dd.matchTime(line)
            except Exception as e:
                res.append(["error", str(e)])
                continue
            if m is None:
                res.append(None)
                continue
            s, e = m.start(1), m.end(1)
            text = line[s:e]
            if not text:
                res.append([text, "empty"])
                continue
            try:
                d = dd.getTime(text, (m, tpl))
                res.append([text, d[0] if d is not None else None])
            except Exception:
                res.append([text, None])
        cases.append({"p": pi, "f": fi, "r": res})

json.dump({"patterns": patterns, "files": files, "cases": cases, "templates": templates}, sys.stdout)
