-- Schema of pgindex, version 1. {schema} is replaced by the quoted schema
-- name, {schema_name} by the bare name (letters, digits, '_') and
-- {partitions} by the number of hash partitions. User IDs are opaque bytes
-- (bytea); text columns hold text cleaned to valid UTF-8 without NUL.

CREATE TABLE {schema}.docs (
    user_id   bytea    NOT NULL,
    msg_id    bytea    NOT NULL,
    date      bigint   NOT NULL,
    sent_date bigint   NOT NULL,
    size      bigint   NOT NULL,
    folder    text     NOT NULL,
    flags     integer  NOT NULL,
    keywords  text[]   NOT NULL,
    thread    text     NOT NULL,
    uid       bigint   NOT NULL,
    modseq    bigint   NOT NULL,
    terms     tsvector NOT NULL,
    subject   text     NOT NULL,
    body      text     NOT NULL,
    PRIMARY KEY (user_id, msg_id)
) PARTITION BY HASH (user_id);
CREATE INDEX docs_terms ON {schema}.docs USING gin (terms);
CREATE INDEX docs_date ON {schema}.docs (user_id, date, msg_id);

DO $$
BEGIN
    FOR i IN 0..{partitions}-1 LOOP
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.docs FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
            '{schema_name}', 'docs_p' || i, '{schema_name}', {partitions}, i);
    END LOOP;
END $$;
