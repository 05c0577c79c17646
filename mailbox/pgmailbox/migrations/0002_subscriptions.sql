-- Schema of pgmailbox, version 2: IMAP subscriptions (RFC 9051 SUBSCRIBE),
-- folder names a user subscribed to, whether or not the folder exists.

CREATE TABLE {schema}.subscriptions (
    user_id bytea NOT NULL,
    name    text  NOT NULL,
    PRIMARY KEY (user_id, name)
) PARTITION BY HASH (user_id);

DO $$
DECLARE
    i int;
BEGIN
    FOR i IN 0..{partitions}-1 LOOP
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
            '{schema_name}', 'subscriptions_p' || i, '{schema_name}', 'subscriptions', {partitions}, i);
    END LOOP;
END $$;
