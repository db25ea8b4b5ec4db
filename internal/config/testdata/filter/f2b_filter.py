# Reference: fail2ban's own FilterReader, used by the Go tests.
# stdin: JSON list of {"basedir", "name", "opts": [[k, v]...], "backend", "path",
#                      "jail": {k: v} (optional: read as JailReader does)}
# stdout: JSON list of results in the same order.
import json, os, sys
sys.path.insert(0, '/usr/lib/python3/dist-packages')
from fail2ban.client.filterreader import FilterReader
from fail2ban.client.jailreader import JailReader


def load(case):
    opts = dict((k, v) for k, v in (case.get("opts") or []))
    try:
        if case.get("path"):
            r = FilterReader(os.path.abspath(case["name"]), 'j', opts, basedir=None)
            r.setBaseDir(None)
            ok = r.readexplicit()
        else:
            r = FilterReader(case["name"], 'j', opts, basedir=case["basedir"])
            ok = r.read()
        if not ok:
            return {"error": "not read"}
        r.applyAutoOptions(case.get("backend", "auto"))
        jail = case.get("jail")
        out = {}
        if jail is None:
            r.getOptions(None)
            stream = r.convert()
        else:
            # JailReader.getOptions: a first reading with the 1st options and
            # all=True (merged into the jail as known/...), then the real one.
            first = dict((k, v) for k, v in jail.items() if k in ("enabled", "backend", "filter"))
            r.getOptions(first, all=True)
            out["all"] = [[k, str(v)] for k, v in r.getCombined().items() if v is not None]
            r.getOptions(dict((k, v) for k, v in jail.items() if k in JailReader._configOpts))
            stream = r.convert()
            FilterReader._fillStream(stream, jail, 'j')
        comb = r.getCombined()
        out["combined"] = [[k, str(v)] for k, v in comb.items() if v is not None]
        for cmd in stream:
            if cmd[0] == "multi-set":
                out.setdefault(cmd[2][3:], []).extend(cmd[3])
            elif cmd[2] in ("addfailregex", "addignoreregex"):
                out.setdefault(cmd[2][3:], []).append(cmd[3])
            elif cmd[2] == "addjournalmatch":
                out.setdefault("journalmatch", []).append(cmd[3:])
            elif cmd[2] == "maxlines":
                out[cmd[2]] = int(cmd[3])
            elif cmd[2] in ("prefregex", "datepattern", "usedns"):
                out[cmd[2]] = cmd[3]
        return out
    except Exception as e:
        return {"error": type(e).__name__ + ": " + str(e)}


json.dump([load(c) for c in json.load(sys.stdin)], sys.stdout)
