-- Lets clients order items by hand.
ALTER TABLE items ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
CREATE INDEX items_position ON items (position);
