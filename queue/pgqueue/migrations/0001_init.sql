-- Schema of pgqueue, version 1: the schema pgqueue created before it used
-- versioned migrations, hence IF NOT EXISTS, so that such a schema is
-- adopted with its jobs. {schema} is replaced by the quoted schema name.

CREATE TABLE IF NOT EXISTS {schema}.jobs (
    id           bigserial PRIMARY KEY,
    topic        text      NOT NULL,
    payload      bytea     NOT NULL,
    key          text,
    state        smallint  NOT NULL,  -- 1 ready or delayed, 2 leased, 3 dead
    attempt      int       NOT NULL DEFAULT 0,
    max_attempts int       NOT NULL,
    priority     int       NOT NULL DEFAULT 0,
    token        bigint    NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL,
    not_before   timestamptz,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    last_error   text      NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_due ON {schema}.jobs (topic, priority DESC, run_at, id) WHERE state IN (1, 2);
CREATE INDEX IF NOT EXISTS jobs_dead ON {schema}.jobs (topic, run_at, id) WHERE state = 3;

CREATE TABLE IF NOT EXISTS {schema}.keys (
    topic   text   NOT NULL,
    key     text   NOT NULL,
    job_id  bigint NOT NULL,
    done_at timestamptz,  -- NULL while the job exists
    PRIMARY KEY (topic, key)
);
CREATE INDEX IF NOT EXISTS keys_done ON {schema}.keys (done_at) WHERE done_at IS NOT NULL;
