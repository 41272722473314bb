"""The office tool set: formula text, recalculation, workbooks, sheets, documents, verify."""
