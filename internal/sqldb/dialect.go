package sqldb

import (
	"slices"
	"strconv"
	"strings"
)

// The pieces of SQL that differ between dialects, built here so that a store
// writes one statement and never branches on its dialect.

// InsertIgnore returns an INSERT of one row of cols into table, with a ?
// for each, that does nothing when the row would violate a unique key:
// RowsAffected is 1 if it inserted the row, 0 if not. On MySQL it is INSERT
// IGNORE, which also turns bad data into warnings: insert only rows the
// code built.
func (d Dialect) InsertIgnore(table string, cols ...string) string {
	ins := "INSERT INTO "
	if d == MySQL {
		ins = "INSERT IGNORE INTO "
	}
	q := ins + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + placeholders(len(cols)) + ")"
	if d != MySQL {
		q += " ON CONFLICT DO NOTHING"
	}
	return q
}

// Upsert returns an INSERT of one row of cols into table, with a ? for each,
// that overwrites the row's other cols with the new values when a row with
// the same keys exists. keys must be a primary or unique key of table and
// be among cols.
func (d Dialect) Upsert(table string, keys []string, cols ...string) string {
	var set []string
	for _, c := range cols {
		if !slices.Contains(keys, c) {
			set = append(set, c+" = "+d.Excluded(c))
		}
	}
	if len(set) == 0 { // nothing to overwrite: keep the row as it is
		set = append(set, keys[0]+" = "+table+"."+keys[0])
	}
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + placeholders(len(cols)) + ") " +
		d.OnConflictUpdate(keys...) + " " + strings.Join(set, ", ")
}

// OnConflictUpdate is the clause that turns an INSERT into an upsert on the
// unique key keys, to be followed by the SET list ("col = expr, ..."):
// ON CONFLICT (keys) DO UPDATE SET, or ON DUPLICATE KEY UPDATE on MySQL
// (which takes whichever unique key the row collides on). In the SET list,
// the row as stored is table.col, the row being inserted Excluded(col).
func (d Dialect) OnConflictUpdate(keys ...string) string {
	if d == MySQL {
		return "ON DUPLICATE KEY UPDATE"
	}
	return "ON CONFLICT (" + strings.Join(keys, ", ") + ") DO UPDATE SET"
}

// Excluded names the value an upsert tried to insert into col, for the SET
// list after OnConflictUpdate: excluded.col, or VALUES(col) on MySQL.
func (d Dialect) Excluded(col string) string {
	if d == MySQL {
		return "VALUES(" + col + ")"
	}
	return "excluded." + col
}

// Greatest is the larger of two values: SQLite's two-argument MAX, GREATEST
// elsewhere.
func (d Dialect) Greatest(a, b string) string {
	if d == SQLite {
		return "MAX(" + a + ", " + b + ")"
	}
	return "GREATEST(" + a + ", " + b + ")"
}

// Least is the smaller of two values: SQLite's two-argument MIN, LEAST
// elsewhere.
func (d Dialect) Least(a, b string) string {
	if d == SQLite {
		return "MIN(" + a + ", " + b + ")"
	}
	return "LEAST(" + a + ", " + b + ")"
}

// ForUpdate is the suffix of a SELECT that locks the rows it reads until
// the unit of work commits, for a read-modify-write inside Atomic: " FOR
// UPDATE", or nothing on SQLite, whose write transactions already hold the
// database's one write lock.
func (d Dialect) ForUpdate() string {
	if d == SQLite {
		return ""
	}
	return " FOR UPDATE"
}

// ForUpdateSkipLocked is ForUpdate that passes over rows another unit has
// locked instead of waiting for them, for workers that each claim a share of
// a queue (PostgreSQL, MySQL 8 and MariaDB 10.6 or later): two workers read
// different rows. Nothing on SQLite, where one writer runs at a time.
func (d Dialect) ForUpdateSkipLocked() string {
	if d == SQLite {
		return ""
	}
	return " FOR UPDATE SKIP LOCKED"
}

// Rebind rewrites a statement written with ? placeholders for d: $1, $2, ...
// on PostgreSQL, as written elsewhere. A ? inside a quoted string, a quoted
// name or a comment is left alone. DB and Tx call it on every statement.
func (d Dialect) Rebind(query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		case c == '\'' || c == '"':
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1 // a doubled quote inside is two strings in a row: same result
			continue
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end])
			i += end - 1
			continue
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			end := strings.Index(query[i+2:], "*/")
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+4])
			i += end + 3
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
