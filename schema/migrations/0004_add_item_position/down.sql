DROP INDEX items_position;
ALTER TABLE items DROP COLUMN position;
