-- The service's own objects: roles, admin users, sessions.
CREATE SCHEMA IF NOT EXISTS shopstream;

CREATE TABLE shopstream.roles (
    name       text PRIMARY KEY,
    channels   text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO shopstream.roles (name, channels) VALUES
    ('admin',   '{order_changes,product_changes,customer_changes,shipment_changes,transaction_changes}'),
    ('support', '{order_changes,customer_changes,shipment_changes}'),
    ('finance', '{order_changes,transaction_changes}');

CREATE TABLE shopstream.admin_users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL,
    role          text NOT NULL REFERENCES shopstream.roles (name) ON UPDATE CASCADE,
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    -- Sessions remember the epoch they were made in; raising it (new password,
    -- new role, disabling) ends every session and socket of the user.
    session_epoch integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_users_email_key ON shopstream.admin_users (lower(email));

-- Sessions, in the layout github.com/alexedwards/scs/pgxstore expects.
CREATE TABLE shopstream.sessions (
    token  text PRIMARY KEY,
    data   bytea NOT NULL,
    expiry timestamptz NOT NULL
);
CREATE INDEX sessions_expiry_idx ON shopstream.sessions (expiry);

-- Every deleted session (logout, expiry clean-up, a manual DELETE) rings every
-- instance so that the sockets opened with it close. The payload is a hash of the
-- token, never the token: any role may LISTEN.
CREATE FUNCTION shopstream.session_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shopstream_sessions',
        encode(sha256(convert_to(OLD.token, 'UTF8')), 'hex'));
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_ended AFTER DELETE ON shopstream.sessions
    FOR EACH ROW EXECUTE FUNCTION shopstream.session_ended();

-- A user's sessions ending (epoch raised, user disabled) rings every instance
-- too, to close that user's sockets.
CREATE FUNCTION shopstream.user_sessions_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shopstream_sessions', 'user:' || NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER admin_users_sessions_ended AFTER UPDATE ON shopstream.admin_users
    FOR EACH ROW WHEN ((NEW.disabled AND NOT OLD.disabled) OR NEW.session_epoch <> OLD.session_epoch)
    EXECUTE FUNCTION shopstream.user_sessions_ended();
