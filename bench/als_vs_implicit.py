"""Times the `implicit` library's ALS beside nestrank's builder on the same
user x item matrix: the Taobao sample's events before 2017-12-03, weighted
view 1, fav 2, cart 3, purchase 4 and summed per (user, item), 15
iterations, 32 and 64 factors. Run by bench/als-vs-implicit.sh (which makes
the venv); prints seconds per fit. implicit takes the confidence matrix
itself, so it gets alpha * w (nestrank uses 1 + alpha * w: same work)."""
import csv
import sys
import time

import numpy as np
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares

events_csv, cutoff = sys.argv[1], int(sys.argv[2])
weights = {"view": 1.0, "fav": 2.0, "cart": 3.0, "purchase": 4.0}
users, items, rows, cols, vals = {}, {}, [], [], []
with open(events_csv, newline="") as f:
    for r in csv.DictReader(f):
        if int(r["ts"]) >= cutoff:
            continue
        rows.append(users.setdefault(r["user_id"], len(users)))
        cols.append(items.setdefault(r["item_id"], len(items)))
        vals.append(weights[r["event"]])
m = sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(users), len(items)))
m.sum_duplicates()
print(f"matrix: {m.shape[0]} users x {m.shape[1]} items, {m.nnz} non-zeros")
for factors, alpha in [(32, 10.0), (64, 40.0)]:
    model = AlternatingLeastSquares(factors=factors, regularization=0.01, iterations=15,
                                    use_cg=True, calculate_training_loss=False, random_state=42)
    start = time.perf_counter()
    model.fit((m * alpha).tocsr(), show_progress=False)
    print(f"implicit {model.__class__.__module__}: {factors} factors, 15 iterations: "
          f"{time.perf_counter() - start:.2f} s")
