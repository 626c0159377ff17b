"""The set-based form of the consent decision rule, as one SQL statement that
``consent.engine.decide_many`` fills in and runs. Kept apart from the engine only for size:
read it beside ``consent/engine.py``, whose ``decide`` is the per-study form it must equal."""

import re

from registry import vocabulary

# Parameters: the selected studies' SQL is spliced in as {selected}; {purposes} and
# {depths} are generated for the purpose's lineage (a handful of values); {records} and
# {series} are the models' table names; {groups} tests modality groups (XRAY covers CR, DX,
# RG) with codes from the vocabulary. Scope values are compared in their canonical form,
# so "newest per scope" and matching agree even on a value stored in another case.
# A series' regions are stored as '|HEAD|NECK|' ('' when unknown): a deny matches a region
# anywhere in it, a permit only a series wholly in the region.
DECIDE_CTES = """
WITH selected (id, patient_id, study_uid{by_columns}) AS ({selected}),
ranked AS (
    SELECT r.id, r.patient_id, r.purpose_id, r.decision, r.scope_kind, r.scope_value,
           r.expires_at, r.recorded_at,
           ROW_NUMBER() OVER (
               PARTITION BY r.patient_id, r.purpose_id, r.scope_kind,
                   CASE WHEN r.scope_kind = 'study' THEN r.scope_value
                        ELSE UPPER(r.scope_value) END
               ORDER BY r.recorded_at DESC, r.id DESC) AS newest
    FROM {records} r
    WHERE r.purpose_id IN ({purposes})
      AND r.recorded_at <= %s AND r.effective_from <= %s
      AND r.patient_id IN (SELECT patient_id FROM selected)
),
live AS (
    SELECT id, patient_id, purpose_id, decision, scope_kind, scope_value, recorded_at,
           CASE WHEN scope_kind = 'study' THEN scope_value ELSE UPPER(scope_value) END
               AS canonical,
           CASE purpose_id {depths} END AS depth,
           CASE scope_kind WHEN 'study' THEN 2 WHEN 'all' THEN 0 ELSE 1 END AS scope_rank
    FROM ranked
    WHERE newest = 1 AND (expires_at IS NULL OR expires_at > %s)
),
matched AS (
    SELECT s.id AS study_id, s.study_uid AS selected_uid, l.*,
           CASE WHEN l.scope_kind = 'body_part' AND EXISTS (
                    SELECT 1 FROM {series} se WHERE se.study_id = s.id
                      AND se.anatomy_regions LIKE '%%|' || l.canonical || '|%%')
                THEN 1 ELSE 0 END AS in_region,
           CASE WHEN l.scope_kind = 'body_part' AND (
                    NOT EXISTS (SELECT 1 FROM {series} se WHERE se.study_id = s.id)
                    OR EXISTS (SELECT 1 FROM {series} se WHERE se.study_id = s.id
                                 AND se.anatomy_regions = ''))
                THEN 1 ELSE 0 END AS unknown_anatomy
    FROM selected s JOIN live l ON l.patient_id = s.patient_id
),
candidate AS (
    SELECT m.*,
           CASE WHEN scope_kind = 'body_part' AND decision = 'deny' AND in_region = 0
                THEN 1 ELSE 0 END AS unsure
    FROM matched m
    WHERE m.scope_kind = 'all'
       OR (m.scope_kind = 'study' AND m.scope_value = m.selected_uid)
       OR (m.scope_kind = 'modality' AND EXISTS (
              SELECT 1 FROM {series} se
              WHERE se.study_id = m.study_id AND (UPPER(se.modality) = m.canonical{groups})))
       OR (m.scope_kind = 'body_part' AND m.decision = 'permit' AND EXISTS (
              SELECT 1 FROM {series} se
              WHERE se.study_id = m.study_id AND se.anatomy_regions = '|' || m.canonical || '|'))
       OR (m.scope_kind = 'body_part' AND m.decision = 'deny'
           AND (m.in_region = 1 OR m.unknown_anatomy = 1))
),
spread AS (
    -- Per study, the deepest candidate purpose at each level of scope or above.
    SELECT c.*,
           MAX(depth) OVER (PARTITION BY study_id) AS deepest_any,
           MAX(CASE WHEN scope_rank >= 1 THEN depth END) OVER (PARTITION BY study_id)
               AS deepest_narrow,
           MAX(CASE WHEN scope_rank = 2 THEN depth END) OVER (PARTITION BY study_id)
               AS deepest_study
    FROM candidate c
),
standing AS (
    -- Step 2: keep a candidate unless another one is at least as deep with a narrower
    -- scope, or deeper with a scope at least as narrow. Windows, not a self-join, so the
    -- cost grows with the number of candidates, whatever the planner believes.
    SELECT * FROM spread
    WHERE NOT CASE scope_rank
        WHEN 0 THEN COALESCE(deepest_narrow >= depth, FALSE) OR deepest_any > depth
        WHEN 1 THEN COALESCE(deepest_study >= depth, FALSE)
                    OR COALESCE(deepest_narrow > depth, FALSE)
        ELSE COALESCE(deepest_study > depth, FALSE)
    END
)
"""

# Every selected study, in id order, with its standing candidates (one row with NULLs when
# it has none: step 4). The order lets the engine conclude study after study while the rows
# stream from a server-side cursor, so no dict of every study is ever built.
DECIDE_MANY_SQL = DECIDE_CTES + """
SELECT s.id, s.patient_id, s.study_uid, st.id, st.decision, st.purpose_id, st.scope_kind,
       st.scope_value, st.recorded_at, st.unsure
FROM selected s LEFT JOIN standing st ON st.study_id = s.id
ORDER BY s.id
"""

# How many studies end in each way, counted in the database: 2 when a standing deny
# decides, 1 when only permits stand, 0 when no candidate stands (the default policy),
# grouped also by any columns the caller's selection carries ({by}: "s.col1, s.col2", or
# nothing). Steps 3 and 4 in SQL, so a preview of a million studies sends back a few rows.
DECIDE_COUNTS_SQL = DECIDE_CTES + """
SELECT verdict{by_tail}, COUNT(*) FROM (
    SELECT s.id{by_select},
           MAX(CASE st.decision WHEN 'deny' THEN 2 WHEN 'permit' THEN 1 ELSE 0 END)
               AS verdict
    FROM selected s LEFT JOIN standing st ON st.study_id = s.id
    GROUP BY s.id{by_select}
) v
GROUP BY verdict{by_tail}
"""  # noqa: S608 (constants only)


def groups_sql(groups: dict[str, tuple[str, ...]]) -> str:
    """' OR (m.canonical = 'XRAY' AND UPPER(se.modality) IN ('CR', 'DX', 'RG'))' for each
    modality group. Literals, not parameters: they come from the vocabulary's own data and
    are checked to be plain codes here."""
    parts = []
    for group, covers in sorted(groups.items()):
        for code in (group, *covers):
            if not re.fullmatch(r"[A-Z0-9]+", code):
                raise ValueError(f"not a modality code: {code!r}")
        listed = ", ".join(f"'{code}'" for code in covers)
        parts.append(f" OR (m.canonical = '{group}' AND UPPER(se.modality) IN ({listed}))")
    return "".join(parts)


MODALITY_GROUPS_SQL = groups_sql(vocabulary.modality_groups())
