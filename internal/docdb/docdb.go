// Package docdb opens a service's document database, MongoDB through the
// official driver, from a URL, or starts FerretDB in this process on SQLite
// files as the embedded default; and it gives document stores a
// transactional outbox without multi-document transactions (outbox.go). It
// knows nothing of the shop.
//
// # Writing documents: the rules every store follows
//
//   - A change and the events that announce it are one write to one
//     document (Events, Change.Insert, Change.Update): MongoDB applies a
//     write to one document atomically, so the events exist if and only if
//     the change does.
//   - FerretDB v1 applies an update as a read and a separate write, so two
//     updates of one document at once can lose one of them. A write whose
//     result depends on what the document held (a conditional update, a
//     $push, a $pull) runs inside DB.Exclusive: on an embedded server it
//     holds a lock that every handle opened on that server shares, which is
//     enough because an embedded server serves this process alone; on a
//     MongoDB server it holds nothing, the server being atomic already.
//   - A unique key is a unique index, created idempotently at start-up
//     (EnsureIndexes); IsDuplicate recognises its violation.
package docdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// connectTimeout bounds reaching a server, so that a start-up or a health
// check against an unreachable one fails instead of hanging.
const connectTimeout = 5 * time.Second

// DB is a service's document database: a driver client and the database it
// owns on the server.
type DB struct {
	*mongo.Database
	client   *mongo.Client
	writes   sync.Locker // serializes read-dependent writes on an embedded server; nil on MongoDB
	onCommit atomic.Pointer[func()]
}

// Open connects to the MongoDB server at rawURL
// (mongodb://user:pass@host:27017/db, or mongodb+srv://), and checks that
// it answers. The database is the URL's path, or defaultDB when it has none.
func Open(ctx context.Context, rawURL, defaultDB string) (*DB, error) {
	name, err := databaseName(rawURL, defaultDB)
	if err != nil {
		return nil, err
	}
	return open(ctx, rawURL, name, nil)
}

func open(ctx context.Context, rawURL, name string, writes sync.Locker) (*DB, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(rawURL).
		SetConnectTimeout(connectTimeout).SetServerSelectionTimeout(connectTimeout))
	if err != nil {
		return nil, fmt.Errorf("connecting to document database %s: %w", Redact(rawURL), err)
	}
	db := &DB{Database: client.Database(name), client: client, writes: writes}
	if err := db.Ping(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("reaching document database %s: %w", Redact(rawURL), err)
	}
	return db, nil
}

// databaseName is the database a URL names in its path, or defaultDB.
func databaseName(rawURL, defaultDB string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") || u.Host == "" {
		return "", fmt.Errorf("document database URL %s: want mongodb://host:27017/db", Redact(rawURL))
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		name = defaultDB
	}
	if name == "" || strings.ContainsAny(name, `/\. "$`) {
		return "", fmt.Errorf("document database URL %s: %q is not a database name", Redact(rawURL), name)
	}
	return name, nil
}

// Ping checks that the server answers, within connectTimeout; it is the
// service's "db" health check.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	return db.client.Ping(ctx, readpref.Primary())
}

// Close disconnects from the server.
func (db *DB) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	return db.client.Disconnect(ctx)
}

// Exclusive runs fn, a write whose result depends on what the document
// held, so that no other such write of this process's embedded server runs
// at the same time (see the package documentation). On MongoDB it just runs
// fn.
func (db *DB) Exclusive(fn func() error) error {
	if db.writes != nil {
		db.writes.Lock()
		defer db.writes.Unlock()
	}
	return fn()
}

// OnCommit sets fn to run after each write that stored events, e.g. to wake
// the outbox relay at once instead of at its next poll. fn must not block.
func (db *DB) OnCommit(fn func()) { db.onCommit.Store(&fn) }

// Committed tells the OnCommit hook that a write stored events; stores call
// it after the write succeeded.
func (db *DB) Committed() {
	if fn := db.onCommit.Load(); fn != nil {
		(*fn)()
	}
}

// EnsureIndexes creates the indexes of a collection, and the collection
// itself, unless they exist already; running it again with the same
// models changes nothing, so services call it at every start-up, as SQL
// services apply their migrations.
//
// It creates them one at a time: FerretDB v1.24 drops the connection when
// one createIndexes command names several indexes of which some exist.
func (db *DB) EnsureIndexes(ctx context.Context, collection string, models ...mongo.IndexModel) error {
	indexes := db.Collection(collection).Indexes()
	for _, m := range models {
		if _, err := indexes.CreateOne(ctx, m); err != nil {
			return fmt.Errorf("creating the indexes of %s: %w", collection, err)
		}
	}
	return nil
}

// indexModel is an ascending index on field, named name, of the documents
// that have the field.
func indexModel(field, name string) mongo.IndexModel {
	return mongo.IndexModel{Keys: bson.D{{Key: field, Value: 1}}, Options: options.Index().SetName(name).SetSparse(true)}
}

// IsDuplicate reports whether err is the violation of a unique index.
func IsDuplicate(err error) bool { return mongo.IsDuplicateKeyError(err) }

// IsNotFound reports whether err says that no document matched.
func IsNotFound(err error) bool { return errors.Is(err, mongo.ErrNoDocuments) }

// Redact returns rawURL with its password replaced, for errors and logs.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
