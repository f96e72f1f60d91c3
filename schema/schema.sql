-- The schema after all 4 migrations. Generated: do not edit.
-- Regenerate with: tenanted schema dump > schema/schema.sql

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE items (
    id         INTEGER PRIMARY KEY,
    owner_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    title      TEXT NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
, position INTEGER NOT NULL DEFAULT 0);
CREATE INDEX items_owner ON items (owner_id);
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id   INTEGER NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('insert', 'update', 'delete'))
);
CREATE TRIGGER items_after_insert AFTER INSERT ON items
BEGIN
    INSERT INTO changes (item_id, operation) VALUES (NEW.id, 'insert');
END;
CREATE TRIGGER items_after_update AFTER UPDATE ON items
BEGIN
    INSERT INTO changes (item_id, operation) VALUES (NEW.id, 'update');
END;
CREATE TRIGGER items_after_delete AFTER DELETE ON items
BEGIN
    INSERT INTO changes (item_id, operation) VALUES (OLD.id, 'delete');
END;
CREATE INDEX items_position ON items (position);
PRAGMA user_version = 4;
