# Reference dump of fail2ban's configuration reader, used by the Go tests.
# usage: f2b_dump.py BASEDIR NAME  -> JSON on stdout
import json, sys
sys.path.insert(0, '/usr/lib/python3/dist-packages')
from fail2ban.client.configreader import ConfigReader

basedir, name = sys.argv[1], sys.argv[2]
out = {}
try:
    c = ConfigReader(basedir=basedir)
    ok = c.read(name)
    if not ok:
        out["error"] = "not read"
    else:
        cfg = c._cfg
        secs = {}
        def dump(sec, opts):
            d = {}
            for o, raw in opts.items():
                try:
                    v = cfg.get(sec, o)
                    d[o] = {"raw": raw, "value": v}
                except Exception as e:
                    d[o] = {"raw": raw, "error": type(e).__name__}
            return d
        secs["DEFAULT"] = dump("DEFAULT", cfg._defaults)
        for s, opts in cfg._sections.items():
            secs[s] = dump(s, opts)
        out["sections"] = secs
        out["order"] = list(cfg._sections.keys())
except Exception as e:
    out["error"] = type(e).__name__ + ": " + str(e)
json.dump(out, sys.stdout)
