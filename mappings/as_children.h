/* as_children.h — a child table's array column <-> the child table's rows (as_schema.h,
 * as_child). The SQL adapters use it to keep a child table; nothing else sees child rows.
 *
 * Decisions:
 * - An array element is converted by the child's element schema with the parent's rules
 *   (as_bson.h): element columns, the element catch-all, required fields.
 * - Missing field, null and [] all mean "no child rows"; no child rows read back as NULL (the
 *   field absent). A SQL table cannot tell the three apart.
 * - An element NULL column is an absent field when the element is rebuilt (as for a parent
 *   row written to MongoDB), so a rebuilt element has the fields SQL holds values for, in
 *   column order, then its catch-all fields. Written to MongoDB, an element without a
 *   catch-all keeps the current element's unmapped fields (as_bson_merge.c).
 * - Errors (AS_EDATA) name mapping, key and the element's path ("orders.2"): an element that
 *   is not a document, one whose field does not map, two elements with the same key. MongoDB
 *   capture checks every array it reads (as_children_drop_invalid): an array that cannot be
 *   rows is a dead letter and stays out of the change, the rest of the document syncs. */
#ifndef AS_CHILDREN_H
#define AS_CHILDREN_H

#include "as_row.h"

/* Array column value arr (AS-JSON array text, or NULL) of the mapping row `parent` (its key
 * columns set) -> rows of s->children[ci].tab (every column set), in array order. Caller frees
 * with as_child_rows_free. */
int as_child_rows(const as_schema *s, size_t ci, const as_row *parent, const as_value *arr,
                  as_row **rows, size_t *nrows, as_error *err);
void as_child_rows_free(as_row *rows, size_t n);

/* Rows of s->children[ci].tab of one parent, in position order -> the array column's value
 * (AS-JSON array text; NULL when n == 0). */
int as_child_array(const as_schema *s, size_t ci, const as_row *rows, size_t n, as_value *out,
                   as_error *err);

/* The array column value as the child table gives it back: arr through as_child_rows and
 * as_child_array (element fields in column order, NULL fields absent, numbers in their
 * column's type, [] as NULL), what verify compares. AS_EDATA when arr cannot be rows. */
int as_child_normalize(const as_schema *s, size_t ci, const as_row *parent, const as_value *arr,
                       as_value *out, as_error *err);

/* Leaves out of row (unsets) every set array column whose array cannot be child rows, so the
 * rest of the document still syncs: AS_OK when there is none, AS_EDATA with err naming the
 * first one (mapping, key, element path, why) when one or more were left out, AS_ERR. */
int as_children_drop_invalid(const as_schema *s, as_row *row, as_error *err);

/* Whether two child table rows are the same row (equal key) / hold the same values. */
bool as_child_same_key(const as_schema *tab, const as_row *a, const as_row *b);
bool as_child_same_values(const as_schema *tab, const as_row *a, const as_row *b);

#endif
