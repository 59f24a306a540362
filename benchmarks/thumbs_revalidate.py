"""Thumbnail requests as a browser makes them since thumbnails are `no-cache` (If-None-Match each
time, a 304 once the file is checked) against a plain fetch of the cached thumbnail: the time a
client sees per request on 127.0.0.1, median over 5 rounds of every photo (at most 200).

    python benchmarks/thumbs_revalidate.py DB     # a database made by `mmembed ingest`
"""
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

env={k:v for k,v in os.environ.items() if not k.startswith("MMEMBED_")}; env["HF_HUB_OFFLINE"]="1"
p=subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "mmembed"),"serve","--port","0","--db",sys.argv[1]],stdout=subprocess.PIPE,stderr=subprocess.DEVNULL,text=True,env=env)
url=p.stdout.readline().strip()
try:
    items=json.load(urllib.request.urlopen(url+"api/items?n=200"))["items"]
    ids=[i["id"] for i in items]
    etags={}
    def get(i, etag=None):
        r=urllib.request.Request(url+f"thumbs/{i}", headers={"If-None-Match": etag} if etag else {})
        t=time.perf_counter()
        try:
            with urllib.request.urlopen(r) as resp: resp.read(); etags[i]=resp.headers.get("ETag"); code=resp.status
        except urllib.error.HTTPError as e: code=e.code
        return time.perf_counter()-t, code
    for i in ids: get(i)  # made and cached
    full=[get(i)[0] for _ in range(5) for i in ids]
    cond=[get(i, etags.get(i)) for _ in range(5) for i in ids]
    codes={c for _,c in cond}
    print(f"{len(ids)} photos: cached thumbnail 200 p50 {1000*statistics.median(full):.2f} ms; revalidated 304 p50 {1000*statistics.median([t for t,_ in cond]):.2f} ms; codes {sorted(codes)}")
finally:
    p.terminate(); p.wait()
