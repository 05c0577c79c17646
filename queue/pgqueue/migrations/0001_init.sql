-- Schema of pgqueue, version 1. {schema} is replaced by the quoted schema
-- name. Payloads and idempotency keys are opaque bytes (bytea); topics are
-- letters, digits, '-' and '_' (queue.ValidTopic).

CREATE TABLE {schema}.jobs (
    id           bigserial PRIMARY KEY,
    topic        text      NOT NULL,
    payload      bytea     NOT NULL,
    key          bytea,
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
CREATE INDEX jobs_due ON {schema}.jobs (topic, priority DESC, run_at, id) WHERE state IN (1, 2);
CREATE INDEX jobs_dead ON {schema}.jobs (topic, run_at, id) WHERE state = 3;

CREATE TABLE {schema}.keys (
    topic   text   NOT NULL,
    key     bytea  NOT NULL,
    job_id  bigint NOT NULL,
    done_at timestamptz,  -- NULL while the job exists
    PRIMARY KEY (topic, key)
);
CREATE INDEX keys_done ON {schema}.keys (done_at) WHERE done_at IS NOT NULL;
