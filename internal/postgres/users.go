package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopstream/shopstream/internal/auth"
)

// User is auth's admin user; these aliases keep the SQL below short.
type User = auth.User

var (
	ErrNotFound = auth.ErrNotFound
	ErrConflict = auth.ErrConflict
)

const userColumns = `id, email, name, role, password_hash, disabled, session_epoch, created_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.PasswordHash, &u.Disabled, &u.SessionEpoch, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, ErrNotFound
	}
	return u, err
}

// CreateUser inserts an admin user. The role must exist.
func (db *DB) CreateUser(ctx context.Context, email, name, role, hash string) (User, error) {
	row := db.Pool.QueryRow(ctx, `INSERT INTO shopstream.admin_users (email, name, role, password_hash)
		VALUES ($1, $2, $3, $4) RETURNING `+userColumns, email, name, role, hash)
	u, err := scanUser(row)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return u, fmt.Errorf("user %s: %w", email, ErrConflict)
		case "23503":
			return u, fmt.Errorf("role %q: %w", role, ErrNotFound)
		}
	}
	if err != nil {
		return u, fmt.Errorf("creating user: %w", err)
	}
	return u, nil
}

// UserByEmail finds a user by email, case-insensitively.
func (db *DB) UserByEmail(ctx context.Context, email string) (User, error) {
	return scanUser(db.Pool.QueryRow(ctx, `SELECT `+userColumns+` FROM shopstream.admin_users WHERE lower(email) = lower($1)`, email))
}

// UserByID finds a user by id.
func (db *DB) UserByID(ctx context.Context, id int64) (User, error) {
	return scanUser(db.Pool.QueryRow(ctx, `SELECT `+userColumns+` FROM shopstream.admin_users WHERE id = $1`, id))
}

// ListUsers returns every admin user, by id.
func (db *DB) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := db.Pool.Query(ctx, `SELECT `+userColumns+` FROM shopstream.admin_users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// updateUser changes one column of a user by email: "disabled", "password_hash"
// or "role". Each of them ends the user's sessions (the epoch goes up), except
// enabling.
func (db *DB) updateUser(ctx context.Context, email, column string, value any) (User, error) {
	row := db.Pool.QueryRow(ctx, `UPDATE shopstream.admin_users SET `+column+` = $2, updated_at = now(),
			session_epoch = session_epoch + CASE WHEN $3 THEN 1 ELSE 0 END
		WHERE lower(email) = lower($1) RETURNING `+userColumns, email, value, value != false)
	u, err := scanUser(row)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return u, fmt.Errorf("role %v: %w", value, ErrNotFound)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return u, fmt.Errorf("updating user: %w", err)
	}
	return u, err
}

// SetDisabled disables or enables a user.
func (db *DB) SetDisabled(ctx context.Context, email string, disabled bool) (User, error) {
	return db.updateUser(ctx, email, "disabled", disabled)
}

// SetPasswordHash replaces a user's password hash.
func (db *DB) SetPasswordHash(ctx context.Context, email, hash string) (User, error) {
	return db.updateUser(ctx, email, "password_hash", hash)
}

// SetRole changes a user's role.
func (db *DB) SetRole(ctx context.Context, email, role string) (User, error) {
	return db.updateUser(ctx, email, "role", role)
}

// RoleChannels returns the channels a role may read.
func (db *DB) RoleChannels(ctx context.Context, role string) ([]string, error) {
	var channels []string
	err := db.Pool.QueryRow(ctx, `SELECT channels FROM shopstream.roles WHERE name = $1`, role).Scan(&channels)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return channels, err
}

// UserChannels returns the channels each of the users may read now, by their
// current role: a user or role that is gone reads none.
func (db *DB) UserChannels(ctx context.Context, ids []int64) (map[int64][]string, error) {
	rows, err := db.Pool.Query(ctx, `SELECT u.id, coalesce(r.channels, '{}')
		FROM shopstream.admin_users u LEFT JOIN shopstream.roles r ON r.name = u.role
		WHERE u.id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading users' channels: %w", err)
	}
	defer rows.Close()
	out := make(map[int64][]string, len(ids))
	for rows.Next() {
		var id int64
		var channels []string
		if err := rows.Scan(&id, &channels); err != nil {
			return nil, fmt.Errorf("reading users' channels: %w", err)
		}
		out[id] = channels
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading users' channels: %w", err)
	}
	return out, nil
}

// KnownClient reports whether client logged in to account since then.
func (db *DB) KnownClient(ctx context.Context, account, client string, since time.Time) (bool, error) {
	var known bool
	err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM shopstream.login_clients
		WHERE account = $1 AND client = $2 AND last_ok > $3)`, account, client, since).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("reading known clients: %w", err)
	}
	return known, nil
}

// RememberClient records that client just logged in to account, and forgets
// the account's clients not seen for 30 days.
func (db *DB) RememberClient(ctx context.Context, account, client string) error {
	_, err := db.Pool.Exec(ctx, `WITH forget AS (
			DELETE FROM shopstream.login_clients
			WHERE account = $1 AND client <> $2 AND last_ok < now() - interval '30 days')
		INSERT INTO shopstream.login_clients (account, client) VALUES ($1, $2)
		ON CONFLICT (account, client) DO UPDATE SET last_ok = now()`, account, client)
	if err != nil {
		return fmt.Errorf("remembering a login's client: %w", err)
	}
	return nil
}

// TableKey returns the primary-key columns of a table (none without one).
func (db *DB) TableKey(ctx context.Context, table string) ([]string, error) {
	rows, err := db.Pool.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY a.attnum`, table)
	if err != nil {
		return nil, fmt.Errorf("reading the key of %s: %w", table, err)
	}
	key, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading the key of %s: %w", table, err)
	}
	return key, nil
}

// TableColumns returns the column names of a table.
func (db *DB) TableColumns(ctx context.Context, table string) ([]string, error) {
	rows, err := db.Pool.Query(ctx, `SELECT attname FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		return nil, fmt.Errorf("reading columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading columns of %s: %w", table, err)
	}
	return cols, nil
}
