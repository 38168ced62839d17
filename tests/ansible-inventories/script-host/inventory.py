#!/usr/bin/env python3
"""An inventory script without _meta: host variables come from `--host NAME`."""
import json
import sys

groups = {
    "web": {"hosts": ["web-1", "web-2"], "vars": {"tier": "web"}},
    "ungrouped": {"hosts": ["solo"]},
}
hostvars = {"web-1": {"ansible_host": "192.0.2.11"}, "solo": {"alone": True}}
if sys.argv[1:] == ["--list"]:
    json.dump(groups, sys.stdout)
elif len(sys.argv) == 3 and sys.argv[1] == "--host":
    json.dump(hostvars.get(sys.argv[2], {}), sys.stdout)
else:
    sys.exit("usage: inventory.py --list | --host NAME")
