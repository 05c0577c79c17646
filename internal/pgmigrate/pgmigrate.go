// Package pgmigrate applies the versioned schema steps of the PostgreSQL
// backends (pgmailbox, pgindex, pgqueue): one mechanism for the three.
//
// # Semantics
//
// [Apply] runs in one transaction that first takes a transaction-level
// advisory lock on the schema's name, so processes that start together
// apply each step once and the others wait, then find it done. It creates
// the schema and its version table if missing, applies the steps whose
// version the table lacks for the component, in version order, and
// records them; a failing step rolls everything back. Versions in the
// table that the caller does not know (written by a newer release) are
// left alone, so an older process can still open a newer schema as long
// as the newer steps were additive.
//
// # Schema
//
// One version table per schema, shared by the components in it:
//
//	mailbricks_migrations(component text, version int,
//	                      applied_at timestamptz DEFAULT now(),
//	                      PRIMARY KEY (component, version))
package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrInvalid is the error, wrapped, for an invalid schema name or a
// malformed list of steps.
var ErrInvalid = errors.New("pgmigrate: invalid argument")

// Step is one versioned schema change.
type Step struct {
	// Version orders the steps of a component; it is positive and unique.
	Version int
	// SQL is the statements of the step, run as one simple-protocol
	// Exec (several statements separated by semicolons are fine).
	SQL string
}

// Beginner starts transactions; *pgxpool.Pool, *pgx.Conn and pgx.Tx
// implement it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

var schemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)

// ValidSchema reports whether s is a schema name the backends accept:
// letters, digits and '_', starting with a letter or '_', at most 48
// bytes (leaving room under PostgreSQL's 63-byte identifiers for the
// names derived from it).
func ValidSchema(s string) bool { return schemaRE.MatchString(s) }

// Load reads the steps of a component from the files "NNNN_name.sql" in
// dir of fsys (NNNN is the version), replacing each "{key}" in them by
// vars[key].
func Load(fsys fs.FS, dir string, vars map[string]string) ([]Step, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, "{"+k+"}", v)
	}
	r := strings.NewReplacer(pairs...)
	var steps []Step
	for _, f := range files {
		base := path.Base(f)
		i := strings.IndexByte(base, '_')
		if i <= 0 {
			return nil, fmt.Errorf("%w: migration file name %s lacks a version", ErrInvalid, f)
		}
		v, err := strconv.Atoi(base[:i])
		if err != nil {
			return nil, fmt.Errorf("%w: migration file name %s: %v", ErrInvalid, f, err)
		}
		sql, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Version: v, SQL: r.Replace(string(sql))})
	}
	return steps, nil
}

// Apply applies to schema the steps of component that it lacks, as the
// package documentation describes, and returns how many it applied. The
// steps may come in any order.
func Apply(ctx context.Context, db Beginner, schema, component string, steps []Step) (int, error) {
	if !ValidSchema(schema) {
		return 0, fmt.Errorf("%w: schema name %q", ErrInvalid, schema)
	}
	steps = slices.Clone(steps)
	slices.SortFunc(steps, func(a, b Step) int { return a.Version - b.Version })
	for i, s := range steps {
		if s.Version <= 0 || i > 0 && steps[i-1].Version == s.Version {
			return 0, fmt.Errorf("%w: %s step version %d", ErrInvalid, component, s.Version)
		}
	}
	q := pgx.Identifier{schema}.Sanitize()
	applied := 0
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		applied = 0
		// The lock is per schema, not per component: components sharing a
		// schema share its version table, whose creation must not race.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "mailbricks_migrate:"+schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+q); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+q+`.mailbricks_migrations (
	component text NOT NULL,
	version int NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version))`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT version FROM `+q+`.mailbricks_migrations WHERE component = $1`, component)
		if err != nil {
			return err
		}
		done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, s := range steps {
			if slices.Contains(done, int32(s.Version)) {
				continue
			}
			if _, err := tx.Exec(ctx, s.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("%s step %d: %w", component, s.Version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+q+`.mailbricks_migrations (component, version) VALUES ($1, $2)`, component, s.Version); err != nil {
				return err
			}
			applied++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pgmigrate: %s in schema %s: %w", component, schema, err)
	}
	return applied, nil
}
