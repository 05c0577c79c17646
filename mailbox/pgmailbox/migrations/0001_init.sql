-- Schema of pgmailbox, version 1. {schema} is replaced by the quoted schema
-- name, {schema_name} by the bare name (letters, digits, '_') and
-- {partitions} by the number of hash partitions of each table. User IDs and
-- idempotency keys are opaque bytes (bytea); text columns only hold
-- strings the mailbox package guarantees are valid UTF-8 without NUL.

CREATE TABLE {schema}.users (
    user_id     bytea  NOT NULL,
    next_folder bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id)
) PARTITION BY HASH (user_id);

CREATE TABLE {schema}.folders (
    user_id       bytea  NOT NULL,
    folder_id     bigint NOT NULL,            -- also the UIDVALIDITY
    name          text   NOT NULL,
    role          text   NOT NULL DEFAULT '',
    uidnext       bigint NOT NULL DEFAULT 1,
    highestmodseq bigint NOT NULL DEFAULT 0,
    total         bigint NOT NULL DEFAULT 0,
    unread        bigint NOT NULL DEFAULT 0,
    size          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, folder_id),
    UNIQUE (user_id, name)
) PARTITION BY HASH (user_id);

CREATE TABLE {schema}.messages (
    user_id   bytea   NOT NULL,
    id        uuid    NOT NULL,
    folder_id bigint  NOT NULL,
    uid       bigint  NOT NULL,
    modseq    bigint  NOT NULL,
    flags     text[]  NOT NULL,
    thread_id uuid    NOT NULL,
    size      bigint  NOT NULL,
    meta      jsonb   NOT NULL,               -- the rest of mailbox.Message
    skeleton  bytea   NOT NULL,
    PRIMARY KEY (user_id, id)
) PARTITION BY HASH (user_id);
CREATE UNIQUE INDEX ON {schema}.messages (user_id, folder_id, uid);
CREATE INDEX ON {schema}.messages (user_id, folder_id, id);
CREATE INDEX ON {schema}.messages (user_id, folder_id, modseq);
CREATE INDEX ON {schema}.messages (user_id, thread_id, id);

-- The unread and read tables: every message of a folder is in exactly one.
CREATE TABLE {schema}.unread (
    user_id   bytea  NOT NULL,
    folder_id bigint NOT NULL,
    id        uuid   NOT NULL,
    PRIMARY KEY (user_id, folder_id, id)
) PARTITION BY HASH (user_id);

CREATE TABLE {schema}.read (
    user_id   bytea  NOT NULL,
    folder_id bigint NOT NULL,
    id        uuid   NOT NULL,
    PRIMARY KEY (user_id, folder_id, id)
) PARTITION BY HASH (user_id);

-- Expunge tombstones for CONDSTORE/QRESYNC.
CREATE TABLE {schema}.expunged (
    user_id   bytea  NOT NULL,
    folder_id bigint NOT NULL,
    modseq    bigint NOT NULL,
    uid       bigint NOT NULL,
    PRIMARY KEY (user_id, folder_id, modseq, uid)
) PARTITION BY HASH (user_id);

CREATE TABLE {schema}.msgkeys (
    user_id bytea NOT NULL,
    key     bytea NOT NULL,
    id      uuid NOT NULL,
    PRIMARY KEY (user_id, key)
) PARTITION BY HASH (user_id);

CREATE TABLE {schema}.thread_keys (
    user_id   bytea NOT NULL,
    tkey      text NOT NULL,
    thread_id uuid NOT NULL,
    PRIMARY KEY (user_id, tkey)
) PARTITION BY HASH (user_id);

DO $$
DECLARE
    t text;
    i int;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'folders', 'messages', 'unread', 'read', 'expunged', 'msgkeys', 'thread_keys'] LOOP
        FOR i IN 0..{partitions}-1 LOOP
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                '{schema_name}', t || '_p' || i, '{schema_name}', t, {partitions}, i);
        END LOOP;
    END LOOP;
END $$;
