"""A scored window's counts, computed where the data is: a pass over its customers (per column: present,
missing, wrong-type and negative values, decile counts against the baseline, category counts), one over
its scores (score deciles, decisions) and, with outcomes, one joining them (counts per decision, outcome
and score bin). What comes back is a few thousand numbers whatever the window's size."""

from __future__ import annotations

from typing import Any

from .. import data, decisions, monitoring, quality
from ..errors import DataValidationError, PipelineError
from .source import Lines, Source

#: outcome values, read case-insensitively
CHURNED = ("yes", "true", "true.", "1")
STAYED = ("no", "false", "false.", "0")
#: bad outcome lines named in an error, besides the first
BAD_LINES_SHOWN = 5


def _decile(value, edges: list[float], compiled: bool = False):
    """A value's interval among the 10 the edges cut (a value on an edge goes right), as ``decile_counts``:
    how many edges are at or below it, the value read once (null stays null). ``compiled``: a binary
    search of comparisons, twice as fast per row (the scores, coded row by row); the column pass codes
    each distinct text once and keeps the array filter, whose code stays small with every column in one
    expression (RESULTS.md §9)."""
    from pyspark.sql import functions as F

    if compiled:
        return F.when(value.isNotNull(), _edges_at_or_below(value, [float(edge) for edge in edges], 0))
    below = F.size(F.filter(F.array(*[F.lit(float(edge)) for edge in edges]), lambda edge: edge <= value))
    return F.when(value.isNotNull(), below)


def _edges_at_or_below(value, edges: list[float], before: int):
    """How many of the sorted ``edges`` are at or below ``value`` (not null), plus ``before``."""
    from pyspark.sql import functions as F

    if not edges:
        return F.lit(before)
    middle = len(edges) // 2
    above = _edges_at_or_below(value, edges[middle + 1 :], before + middle + 1)
    return F.when(value >= F.lit(edges[middle]), above).otherwise(_edges_at_or_below(value, edges[:middle], before))


def input_counts(spark, location: str, statistics: dict[str, Any]) -> dict[str, Any]:
    """``monitoring.window_counts`` of the customers at ``location`` (``column_counts``)."""
    source = Source(spark, location, labelled=False)
    return column_counts(source.rows.select(*source.format.spark_named()), statistics)


#: every character a number of ``data.NUMBER_PATTERN`` may hold (once trimmed)
NUMBER_CHARACTERS = "0123456789+-.eE"
#: a numeric value's code (``_numeric_code``): its decile, or one of these, plus NEGATIVE below zero
NOT_WHOLE, NOT_A_NUMBER, MISSING, NEGATIVE = 20, 30, 40, 100
#: a categorical value's code besides its place in the baseline's domain
UNSEEN, NO_VALUE = -1, -2


def column_counts(rows, statistics: dict[str, Any]) -> dict[str, Any]:
    """``monitoring.window_counts`` of ``rows`` (the baseline's columns by name, as text), in one job:
    each row's trimmed values exploded into (column, text) pairs and those counted, so that each distinct
    text is read and coded once however many rows hold it (a number's decile and what is wrong with it,
    a category's place in the baseline's domain), then the codes summed in a few hundred groups. Values
    the baseline never saw keep their text through both groupings."""
    from pyspark.sql import functions as F

    numeric = [f for f in statistics["features"] if f["inferred_type"] in monitoring.NUMERIC_TYPES]
    categorical = [f for f in statistics["features"] if f["inferred_type"] == "String"]
    known = {
        f["name"]: [b["value"] for b in f["string_statistics"]["distribution"]["categorical"]["buckets"]]
        for f in categorical
    }
    texts = F.array(*[F.trim(F.col(f["name"])) for f in numeric + categorical])
    distinct = rows.select(F.posexplode(texts).alias("column", "text")).groupBy("column", "text").count()
    text, code = F.col("text"), None
    for i, feature in enumerate(numeric + categorical):
        coded = _category_code(text, known[feature["name"]]) if i >= len(numeric) else _numeric_code(text, feature)
        code = (code if code is not None else F).when(F.col("column") == i, coded)
    unseen = F.when(code == UNSEEN, text)
    groups = (
        distinct.select("column", "count", code.alias("code"), unseen.alias("unseen"))
        .groupBy("column", "code", "unseen")
        .agg(F.sum("count").alias("count"))
        .collect()
    )
    counted: dict[tuple[int, int], int] = {}
    others: dict[str, dict[str, int]] = {}
    for g in groups:
        counted[g["column"], g["code"]] = counted.get((g["column"], g["code"]), 0) + int(g["count"])
        if g["unseen"] is not None:
            others.setdefault(categorical[g["column"] - len(numeric)]["name"], {})[g["unseen"]] = int(g["count"])
    items = sum(n for (column, _), n in counted.items() if column == 0)
    columns: dict[str, Any] = {}
    for i, feature in enumerate(numeric):
        found = {code: n for (column, code), n in counted.items() if column == i}
        plain: dict[int, int] = {}  # negatives folded onto their code
        for code, n in found.items():
            plain[code % NEGATIVE] = plain.get(code % NEGATIVE, 0) + n
        missing = sum(n for code, n in plain.items() if code == MISSING)
        columns[feature["name"]] = {
            "present": items - missing,
            "missing": missing,
            "mismatched": sum(n for code, n in plain.items() if code >= NOT_WHOLE and code != MISSING),
            "negative": sum(n for code, n in found.items() if code >= NEGATIVE),
            "deciles": [plain.get(k, 0) + plain.get(NOT_WHOLE + k, 0) for k in range(10)],
        }
    for j, feature in enumerate(categorical):
        name = feature["name"]
        values = {value: counted.get((len(numeric) + j, k), 0) for k, value in enumerate(known[name])}
        values = {value: n for value, n in {**values, **others.get(name, {})}.items() if n}
        present = sum(values.values())
        columns[name] = {"present": present, "missing": items - present, "values": values}
    return {"items": items, "columns": columns}


def _number(text):
    """A text as a number by the data's rule (``data.NUMBER_PATTERN``), else null. Spark's cast reads a
    little more (Java's grammar: "NaN", "Infinity", "inf", a d/f suffix, hexadecimal), all of it with a
    character no number of the rule has: such a text is refused before the cast; tests/test_window.py
    holds the two rules equal."""
    from pyspark.sql import functions as F

    return F.when(F.translate(text, NUMBER_CHARACTERS, "") == "", text.cast("double"))


def _numeric_code(text, feature: dict[str, Any]):
    """A numeric text's one code: its decile (0-9); NOT_WHOLE + its decile for a fraction in a
    whole-number column (counted as mismatched and in its decile, as ``monitoring.window_counts`` counts
    it); NOT_A_NUMBER; MISSING; plus NEGATIVE for a number below zero."""
    from pyspark.sql import functions as F

    number = _number(text)
    decile = _decile(number, monitoring.deciles(feature))
    fraction = number != F.floor(number) if feature["inferred_type"] == "Integral" else F.lit(False)
    code = (
        F.when(F.coalesce(text, F.lit("")) == "", MISSING)
        .when(number.isNull(), NOT_A_NUMBER)
        .when(F.coalesce(fraction, F.lit(False)), NOT_WHOLE + decile)
        .otherwise(decile)
    )
    return code + F.when(F.coalesce(number < 0, F.lit(False)), NEGATIVE).otherwise(0)


def _category_code(text, domain: list[str]):
    """A category's place in the baseline's ``domain``; UNSEEN for a value it never saw, NO_VALUE for none."""
    from pyspark.sql import functions as F

    places = F.create_map(*[F.lit(v) for k, value in enumerate(domain) for v in (value, k)]) if domain else None
    place = F.element_at(places, text) if domain else F.lit(None)
    return F.when(F.coalesce(text, F.lit("")) == "", NO_VALUE).otherwise(F.coalesce(place, F.lit(UNSEEN)))


def _scores(spark, window: dict[str, Any]):
    """The window's scores as (identifier, score, decision) rows."""
    from pyspark.sql import functions as F

    if window.get("header", True):  # ``score``'s file
        frame = spark.read.options(header=True, escape='"').csv(window["scores_path"])
    else:  # a Batch Transform's ``.out`` parts: no header, the columns its description names
        frame = spark.read.options(escape='"').csv(window["scores_path"]).toDF(*window["columns"])
    return frame.select(
        F.col(window["identifier"]).alias("id"),
        F.col(decisions.SCORE).cast("double").alias("score"),
        F.col("decision"),
    )


def score_counts(spark, window: dict[str, Any], score_statistics: dict[str, Any] | None) -> dict[str, Any]:
    """How many of the window's customers got each decision and, against the test split's score
    distribution, the window's score decile counts."""
    return score_aggregates(_scores(spark, window), score_statistics)


def score_aggregates(scores, score_statistics: dict[str, Any] | None) -> dict[str, Any]:
    """``score_counts`` of a frame with ``score`` (and ``decision``, when it has one)."""
    from pyspark.sql import functions as F

    decided = "decision" in scores.columns
    aggregates = [F.count(F.lit(1)).alias("items")]
    if decided:
        aggregates += [
            F.sum((F.col("decision") == d).cast("long")).alias(f"n{i}") for i, d in enumerate(decisions.DECISIONS)
        ]
    if score_statistics is not None:
        edges = monitoring.deciles(score_statistics["features"][0])
        decile = _decile(F.col("score"), edges, compiled=True)
        aggregates += [F.sum((decile == k).cast("long")).alias(f"d{k}") for k in range(10)]
    figures = scores.agg(*aggregates).first()
    counted: dict[str, Any] = {"items": int(figures["items"])}
    if decided:
        counted["decisions"] = {d: int(figures[f"n{i}"] or 0) for i, d in enumerate(decisions.DECISIONS)}
    if score_statistics is not None:
        counted["deciles"] = [int(figures[f"d{k}"] or 0) for k in range(10)]
    return counted


def _outcome_lines(spark, window: dict[str, Any], outcomes: str):
    """(the outcomes' ``Lines``, their rows: _id, id, churned 0/1 or null for a bad line, _bad)."""
    from pyspark.sql import functions as F

    lines = Lines(spark, outcomes)
    header = [field.strip() for field in lines.first.split(",")]
    if header != [window["identifier"], "churned"]:
        expected = f"{window['identifier']},churned"
        raise DataValidationError(outcomes, f"the header must be {expected}; got {lines.first.strip()!r}", 1)
    fields = F.split(F.col("value"), ",")
    answer = F.lower(F.trim(fields.getItem(1)))
    churned = F.when(answer.isin(*CHURNED), 1).when(answer.isin(*STAYED), 0)
    rows = lines.text.where((F.col("_id") != 0) & (F.trim("value") != "")).select(
        "_id",
        F.trim(fields.getItem(0)).alias("id"),
        churned.alias("churned"),
        ((F.size(fields) != 2) | churned.isNull()).alias("_bad"),
    )
    return lines, rows


#: ``_joined``'s groupings: by identifier, and by score key (``_score_key``; NO_DECILE: no score statistics)
BY_IDENTIFIER, BY_SCORE, NO_DECILE = 0, 1, 10


def _score_key(decision, decile):
    """A scored row's decision (its place in DECISIONS; len(DECISIONS) for none of them) and score decile
    (NO_DECILE for none) as one number."""
    from pyspark.sql import functions as F

    none = F.lit(len(decisions.DECISIONS))
    return F.coalesce(decision, none) * (NO_DECILE + 1) + F.coalesce(decile, F.lit(NO_DECILE))


def _joined(spark, window: dict[str, Any], rows, score_statistics: dict[str, Any] | None = None, scores=False):
    """Per identifier (grouping BY_IDENTIFIER): how many scored rows and outcome lines have it, its
    decision, score bin and outcome, whether a bad line has it: the one shuffle every outcome figure and
    check is read from (scores and outcomes as one union, grouped once). ``scores``: also per
    ``_score_key`` (BY_SCORE; deciles against ``score_statistics``) how many scored rows have it: a scored
    row enters the grouping twice, its second copy folding into a few dozen groups before the shuffle,
    so the score counts need no pass of their own and no per-row tallies ride the shuffle."""
    from pyspark.sql import functions as F

    # every buffer of the grouping fixed-width (the decision as its place in DECISIONS): a hash aggregation
    place = F.create_map(*[F.lit(v) for k, d in enumerate(decisions.DECISIONS) for v in (d, k)])
    decision = F.element_at(place, F.col("decision"))
    edges = monitoring.deciles(score_statistics["features"][0]) if score_statistics else None
    decile = _decile(F.col("score"), edges, compiled=True) if edges else F.lit(None).cast("int")
    scored = _scores(spark, window).select(
        "id",
        F.lit(1).alias("s"),
        F.lit(0).alias("o"),
        decision.alias("decision"),
        F.least(F.floor(F.col("score") * quality.BINS), F.lit(quality.BINS - 1)).cast("int").alias("bin"),
        F.lit(None).cast("int").alias("churned"),
        F.lit(0).alias("b"),
        _score_key(decision, decile).alias("key"),
    )
    told = rows.select(
        "id",
        F.lit(0).alias("s"),
        F.lit(1).alias("o"),
        F.lit(None).cast("int").alias("decision"),
        F.lit(None).cast("int").alias("bin"),
        "churned",
        F.col("_bad").cast("int").alias("b"),
        F.lit(None).cast("int").alias("key"),
    )
    by_score = F.array(F.lit(BY_IDENTIFIER), F.lit(BY_SCORE))
    grouping = F.explode(F.when(F.col("s") == 1, by_score).otherwise(F.array(F.lit(BY_IDENTIFIER))))
    both = scored.unionByName(told).select("*", (grouping if scores else F.lit(BY_IDENTIFIER)).alias("grouping"))
    by_identifier = F.col("grouping") == BY_IDENTIFIER
    return both.groupBy(
        "grouping",
        F.when(by_identifier, F.col("id")).alias("id"),
        F.when(~by_identifier, F.col("key")).alias("key"),
    ).agg(
        F.nullif(F.sum("s"), F.lit(0)).alias("scored"),  # null: no scored row has the identifier
        F.nullif(F.sum("o"), F.lit(0)).alias("told"),
        F.max("decision").alias("decision"),
        F.max("bin").alias("bin"),
        F.max("churned").alias("churned"),
        F.max("b").alias("bad"),
    )


def outcome_counts(
    spark, window: dict[str, Any], outcomes: str, score_statistics: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Outcome counts per (decision, churned, score bin) of the window's customers with an outcome (a bad
    line, a customer scored once with two outcomes or a customer the window did not score raises,
    naming the line); how many scored customers had none, or shared their identifier with another
    scored row (left out: their outcomes cannot be told apart); and the window's ``score_counts``, from
    the same pass. One job when the outcomes are sound."""
    from pyspark.sql import functions as F

    lines, rows = _outcome_lines(spark, window, outcomes)
    kind = (
        F.when(F.col("grouping") == BY_SCORE, "score")
        .when(F.col("bad") == 1, "bad")
        .when(F.col("scored").isNull(), "unknown")
        .when(F.col("scored") > 1, "shared")
        .when(F.col("told") > 1, "twice")
        .when(F.col("told").isNull(), "without")
        .otherwise("counted")
    )
    groups = (
        _joined(spark, window, rows, score_statistics, scores=True)
        .groupBy(kind.alias("kind"), "decision", "churned", "bin", "key")
        .agg(F.sum("scored").alias("rows"))
        .collect()
    )
    problems = {g["kind"] for g in groups} & {"bad", "twice", "unknown"}
    if problems:
        _refuse(lines, rows.where("_bad"), "not <identifier>,<yes|no>")
        scored = _scores(spark, window)
        shared = scored.groupBy("id").count().where("count > 1").select("id")
        twice = rows.groupBy("id").count().where("count > 1").join(shared, "id", "left_anti")
        _refuse(lines, rows.join(twice, "id", "left_semi"), "a customer scored once with more than one outcome")
        _refuse(lines, rows.join(scored, "id", "left_anti"), "a customer this window did not score")
    counts = quality.empty_counts()
    tally = {"without": 0, "shared": 0}
    for group in groups:
        if group["kind"] == "counted":
            if group["decision"] is None:
                raise PipelineError(f"{window['scores_path']}: a decision that is none of {decisions.DECISIONS}")
            counts[decisions.DECISIONS[group["decision"]]][group["churned"], int(group["bin"])] += group["rows"]
        elif group["kind"] in tally:
            tally[group["kind"]] += group["rows"]
    return {
        "counts": counts,
        "without_outcome": tally["without"],
        "shared_identifier": tally["shared"],
        "scores": _score_counts_of([g for g in groups if g["kind"] == "score"], score_statistics is not None),
    }


def _score_counts_of(groups, with_deciles: bool) -> dict[str, Any]:
    """``score_counts`` from the join's BY_SCORE groups: every scored row is counted in one of them."""
    counted: dict[str, Any] = {"items": int(sum(g["rows"] for g in groups))}
    per_decision = {d: 0 for d in decisions.DECISIONS}
    deciles = [0] * 10
    for key, n in ((g["key"], g["rows"]) for g in groups):
        decision, decile = divmod(key, NO_DECILE + 1)
        if decision < len(decisions.DECISIONS):
            per_decision[decisions.DECISIONS[decision]] += n
        if decile != NO_DECILE:
            deciles[decile] += n
    counted["decisions"] = {d: int(n) for d, n in per_decision.items()}
    if with_deciles:
        counted["deciles"] = [int(n) for n in deciles]
    return counted


def _refuse(lines: Lines, bad, problem: str) -> None:
    """A DataValidationError naming the first of the ``bad`` rows' lines, if there is one."""
    first = bad.orderBy("_id").limit(BAD_LINES_SHOWN + 1).select("_id").collect()
    if first:
        numbers = lines.line_numbers([row["_id"] for row in first])
        others = ", ".join(map(str, numbers[1:]))
        more = f" (also line{'s' if len(numbers) > 2 else ''} {others})" if others else ""
        raise DataValidationError(lines.location, f"{problem}{more}", numbers[0])


def untreated_records(spark, window: dict[str, Any], outcomes: str, folder: str) -> int:
    """The window's untreated customers (below the cutoff, and the control group) with their outcomes as
    labelled raw records, written as text parts under ``folder``; how many. Offered customers are left
    out: the offer changed their outcome, and a model taught on them would learn the offer's effect.
    The outcomes are checked as ``outcome_counts`` checks them, before anything is written."""
    from pyspark.sql import functions as F

    if window["identifier"] != "Phone":
        raise DataValidationError(window["input_path"], "retraining assembles raw customer records", 1)
    outcome_counts(spark, window, outcomes)  # a bad outcomes file stops here
    _, rows = _outcome_lines(spark, window, outcomes)
    sound = _joined(spark, window, rows).where(
        (F.col("scored") == 1)
        & (F.col("told") == 1)
        & F.col("decision").isin(*[decisions.DECISIONS.index(d) for d in (decisions.NO_OFFER, decisions.HOLDOUT)])
    )
    source = Source(spark, window["input_path"], labelled=False)
    customers = source.rows.select(source.format.spark_identifier(source).alias("id"), *source.format.spark_named())
    labelled = customers.join(sound.select("id", "churned"), "id")
    label = F.when(F.col("churned") == 1, F.lit("True.")).otherwise(F.lit("False."))
    columns = [label if name == data.LABEL else F.trim(F.col(f"`{name}`")) for name in data.RAW_COLUMNS]
    labelled.select(F.concat_ws(",", *columns).alias("value")).write.mode("overwrite").text(folder)
    return spark.read.text(folder).count()
