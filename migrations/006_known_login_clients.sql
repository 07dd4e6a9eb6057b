-- Clients that logged in to an account: the login throttle's per-account
-- ceiling does not refuse them, so failures from elsewhere cannot lock a user
-- out at an address where they logged in before (OWASP's Authentication Cheat
-- Sheet: lockouts by strangers; its "device cookie" idea, keyed by address).
-- The pair and address limits still apply to them.
CREATE TABLE shopstream.login_clients (
    account text NOT NULL,         -- the lower-cased email
    client  text NOT NULL,         -- the throttle's address key: IPv4, or an IPv6 /64
    last_ok timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, client)
);
