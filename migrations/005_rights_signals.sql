-- Rights that change ring every instance, which re-reads the channels of each
-- open socket's user and ends the subscriptions a role no longer grants.
--
-- The payload is a hint, not a proof: any role may NOTIFY shopstream_sessions,
-- so an instance acts on it only after reading the rows themselves. One NOTIFY
-- per statement (and PostgreSQL folds equal payloads of one transaction).
CREATE FUNCTION shopstream.rights_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shopstream_sessions', 'roles');
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION shopstream.rights_changed() FROM PUBLIC;

CREATE TRIGGER roles_rights_changed AFTER UPDATE OR DELETE OR TRUNCATE ON shopstream.roles
    FOR EACH STATEMENT EXECUTE FUNCTION shopstream.rights_changed();

CREATE TRIGGER admin_users_rights_changed AFTER UPDATE OF role ON shopstream.admin_users
    FOR EACH STATEMENT EXECUTE FUNCTION shopstream.rights_changed();

-- A deleted admin's sessions end too (their rows outlive the user until they
-- expire): the instances check them and close the sockets.
CREATE FUNCTION shopstream.user_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shopstream_sessions', 'user:' || OLD.id);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION shopstream.user_deleted() FROM PUBLIC;

CREATE TRIGGER admin_users_deleted AFTER DELETE ON shopstream.admin_users
    FOR EACH ROW EXECUTE FUNCTION shopstream.user_deleted();
