-- Version 2: idempotency keys are opaque bytes. Existing keys keep their
-- bytes (text is UTF-8).

ALTER TABLE {schema}.jobs ALTER COLUMN key TYPE bytea USING convert_to(key, 'UTF8');
ALTER TABLE {schema}.keys ALTER COLUMN key TYPE bytea USING convert_to(key, 'UTF8');
