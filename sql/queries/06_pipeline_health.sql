-- Are the pipelines running, how far have they read, and what failed last?
-- Written against SingleStore's information_schema: `matchstream sql` reads the local engine's
-- catalog for it, so the file runs unchanged on both.
USE speed_dating;
SHOW PIPELINES;

SELECT PIPELINE_NAME, SOURCE_PARTITION_ID, CURSOR_OFFSET, LATEST_OFFSET
FROM information_schema.PIPELINES_CURSORS
WHERE DATABASE_NAME = 'speed_dating'
ORDER BY PIPELINE_NAME, SOURCE_PARTITION_ID;

SELECT PIPELINE_NAME, ERROR_TYPE, ERROR_MESSAGE, BATCH_SOURCE_PARTITION_ID
FROM information_schema.PIPELINES_ERRORS
WHERE DATABASE_NAME = 'speed_dating'
ORDER BY ERROR_UNIX_TIMESTAMP DESC
LIMIT 5;
