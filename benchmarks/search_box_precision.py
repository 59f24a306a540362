"""How often the search box turns an ordinary query into a place or date filter: the 6,195 captions
of Flickr8k dev and the shared COCO photos, parsed as queries on a library whose places are
``tests/where_photos.py``'s cities (Barcelona, Kyoto, Chicago, Paris, Paris TX), with the world gazetteer.

    python benchmarks/search_box_precision.py [CHECKOUT]   # a checkout's root (default: this one), to compare two
"""
import csv
import sys
from datetime import date
from pathlib import Path

root = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, root)
from mmembed.retrieval.phrases import parse_query, PlaceNames
from mmembed.retrieval.located import world_lookup
from mmembed.text.places import gazetteer
g = gazetteer()
places = [g.reverse(lat, lon) for lat, lon in [(41.3851, 2.1734), (35.0116, 135.7681), (41.8781, -87.6298), (48.8566, 2.3522), (33.6609, -95.5555)]]
places = [p for p in places if p is not None]
names = PlaceNames(places)
world = world_lookup()
queries = []
for path in ('/work/shared/data/flickr8k/dev_captions.csv', '/work/shared/data/photos/coco_captions.csv'):
    with open(path, newline='') as f:
        for row in csv.DictReader(f):
            queries.append(row.get('caption') or list(row.values())[-1])
filtered = []
for q in queries:
    p = parse_query(q, names, date(2026, 12, 7), world=world)
    if p.place is not None or p.taken_after is not None or p.taken_before is not None:
        filtered.append((q, p.place.label() if p.place else None, str(p.taken_after)[:10] if p.taken_after else None))
print(root, len(queries), 'queries;', len(filtered), 'became filters')
for item in filtered:
    print('  ', item)
