-- A change log that sync clients read with "SELECT * FROM changes WHERE seq > ?".
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
