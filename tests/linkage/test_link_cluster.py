import polars as pl

from linkage.cluster import assign_stable_ids, cluster_edges


def edges(rows):
    return pl.DataFrame(rows, schema={"id_l": pl.String, "id_r": pl.String, "match_probability": pl.Float64},
                        orient="row")


def test_chaining_guard_rejects_a_lone_weak_bridge():
    nodes = [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)] + ["s"]
    strong = [(f"a{i}", f"a{j}", 0.9999) for i in range(4) for j in range(i + 1, 4)]
    strong += [(f"b{i}", f"b{j}", 0.9999) for i in range(4) for j in range(i + 1, 4)]
    bridge = [("a0", "b0", 0.96)]  # one weak edge between two 4-record persons
    singleton = [("s", "a1", 0.97)]  # a lone record joining a person: one edge is enough
    out, metrics = cluster_edges(nodes, edges(strong + bridge + singleton))
    cl = dict(zip(out["id"], out["cluster_id"]))
    assert cl["a0"] != cl["b0"]
    assert cl["s"] == cl["a1"]
    assert metrics["weak_bridges_rejected"] == 1 and metrics["largest_cluster"] == 5
    assert metrics["largest_cluster_plain"] == 9
    plain, _ = cluster_edges(nodes, edges(strong + bridge + singleton), guard=False)
    assert plain["cluster_id"].n_unique() == 1


def test_well_supported_weak_merge_is_kept_and_confidence():
    nodes = ["a0", "a1", "b0", "b1", "z"]
    rows = [("a0", "a1", 0.9999), ("b0", "b1", 0.9999), ("a0", "b0", 0.96), ("a1", "b1", 0.97), ("z", "a0", 0.6)]
    out, _ = cluster_edges(nodes, edges(rows))
    conf = dict(zip(out["id"], out["match_confidence"]))
    assert out.filter(pl.col("id") != "z")["cluster_id"].n_unique() == 1
    assert conf["a0"] == 0.9999 and abs(conf["z"] - 0.4) < 1e-9


def ids_for(mapping: dict[str, int], previous=None, run="r1"):
    clusters = pl.DataFrame({"record_id": list(mapping), "cluster_id": list(mapping.values())})
    return assign_stable_ids(clusters, previous, run_id=run, key=b"k" * 32)


def test_stable_ids_continue_merge_split_new():
    first, lineage0 = ids_for({"r1": 1, "r2": 1, "r3": 2, "r4": 2, "r5": 2, "r6": 3, "r7": 3, "r8": 4})
    assert lineage0.height == 0 and set(first["id_status"]) == {"new"}
    pid = dict(zip(first["record_id"], first["person_id"]))
    assert all(p.startswith("P-") and not p.endswith(tuple(pid)) for p in pid.values())
    prev = first.select("record_id", "person_id")
    # same clusters, renumbered: every id continues
    again, lin = ids_for({"r1": 9, "r2": 9, "r3": 7, "r4": 7, "r5": 7, "r6": 5, "r7": 5, "r8": 4}, prev, "r2")
    assert dict(zip(again["record_id"], again["person_id"])) == pid and lin.height == 0
    # merge {r1,r2}+{r6,r7}; split {r3,r4}|{r5}; r8 unchanged; r9 new
    nxt, lin = ids_for({"r1": 1, "r2": 1, "r6": 1, "r7": 1, "r3": 2, "r4": 2, "r5": 3, "r8": 4, "r9": 5}, prev,
                       "r3")
    got = dict(zip(nxt["record_id"], nxt["person_id"]))
    assert got["r1"] == got["r6"] and got["r1"] in (pid["r1"], pid["r6"])
    assert got["r3"] == pid["r3"] and got["r5"] not in pid.values()
    assert got["r8"] == pid["r8"] and got["r9"] not in pid.values()
    reasons = {(r["old_person_id"], r["reason"]) for r in lin.iter_rows(named=True)}
    absorbed = pid["r6"] if got["r1"] == pid["r1"] else pid["r1"]
    assert (absorbed, "merged") in reasons and (pid["r3"], "split") in reasons
    assert set(lin["run_id"]) == {"r3"}
    # a person whose records are gone is retired
    _, lin = ids_for({"r1": 1, "r2": 1}, prev, "r4")
    assert (pid["r8"], "retired") in {(r["old_person_id"], r["reason"]) for r in lin.iter_rows(named=True)}
