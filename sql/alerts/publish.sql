-- One round of the alerts publisher (`matchstream alerts`, matchstream/alerts.py), run on the
-- database speed_dating after the pipeline alerts_published has loaded everything on the topic:
-- every alert not on the topic yet, one message each, keyed by the prediction id.
-- The message value is one tab-separated line (SELECT ... INTO KAFKA's default FIELDS/LINES):
--   id <TAB> probability <TAB> threshold <TAB> model_version <TAB> scored_at <LF>
-- (the key column alert_key is taken out of the value, so id is selected twice; the key is named
-- in double quotes as in SingleStore's example). ${KAFKA} is
-- the broker as the database sees it (`matchstream sql --var`).
SELECT id AS alert_key, id, probability, `threshold`, model_version, scored_at
FROM alerts_to_publish
ORDER BY scored_at, id
INTO KAFKA '${KAFKA}/alerts'
KAFKA KEY "alert_key";
