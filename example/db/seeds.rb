# One known row, so a smoke test can tell a page read from the database. Safe to run again.
Note.find_or_create_by!(body: "First note, read from the database")
