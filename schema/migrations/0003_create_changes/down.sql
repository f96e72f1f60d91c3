DROP TRIGGER items_after_delete;
DROP TRIGGER items_after_update;
DROP TRIGGER items_after_insert;
DROP TABLE changes;
