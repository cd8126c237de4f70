/*  import_mapping.c: the column mapping file of `advsync-agent import` (zconfig, section
    `import`): which CSV column feeds which field of the event JSON, how its values translate
    and how its dates read, checked against the event's fields when loaded. The format is
    documented with deploy/examples/import-mapping.cfg.  */
#include "advsync.pb-c.h"
#include "import_private.h"
#include "json.h"
#include "sections.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------------------------
   The mapping file. */

/* The two messages a cell fills from text (a time, a date) rather than field by field. */
#define S_TIMESTAMP "advsync.v1.Timestamp"
#define S_DATE "advsync.v1.Date"

/* "referralReceived.receivedAt" -> "referral_received.received_at". */
static void s_snake(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 2 < size; p++) {
        if (isupper((unsigned char)*p)) {
            if (n > 0 && out[n - 1] != '.')
                out[n++] = '_';
            out[n++] = (char)tolower((unsigned char)*p);
        } else
            out[n++] = *p;
    }
    out[n] = '\0';
}

/* "referral_received.received_at" -> "referralReceived.receivedAt" (the JSON names). */
void asy_import_camel(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < size; p++) {
        if (*p == '_' && isalnum((unsigned char)p[1]) && n > 0 && out[n - 1] != '.')
            out[n++] = (char)toupper((unsigned char)*++p);
        else
            out[n++] = *p;
    }
    out[n] = '\0';
}

/* The kind named by text: dotted, snake_case or lowerCamelCase. */
int asy_import_kind(const char *text)
{
    char snake[128];
    s_snake(text, snake, sizeof snake);
    return asy_kind_from_name(snake);
}

/* The values the kind column is mapped to must name event kinds ("" skips the row). Returns 0
   or ASY_ECONFIG with error set. */
static int s_check_kind_values(const asy_import_column_t *column, const char *where, char *error,
                               size_t error_size)
{
    for (size_t i = 0; column->is_kind && i < column->value_count; i++) {
        const char *to = column->values[i].to;
        if (to && *to && !asy_import_kind(to)) {
            char shown[ASY_IMPORT_CELL_SHOWN];
            asy_set_error(error, error_size,
                          "%s/value \"%s\": to: \"%s\" is not an event kind (e.g. "
                          "referral.received; \"\" skips the row)",
                          where, column->values[i].from, ASY_IMPORT_CELL(to, shown));
            return ASY_ECONFIG;
        }
    }
    return 0;
}

/* The field the column's path ends at, *desc_p set to the message that holds it; NULL with
   error set if the path names no field of the event. */
static const ProtobufCFieldDescriptor *s_find_field(const asy_import_column_t *column,
                                                    const ProtobufCMessageDescriptor **desc_p,
                                                    const char *where, char *error,
                                                    size_t error_size)
{
    const ProtobufCMessageDescriptor *desc = &advsync__v1__event__descriptor;
    const ProtobufCFieldDescriptor *field = NULL;
    for (int i = 0; i < column->depth; i++) {
        field = asy_json_find_field(desc, column->segment[i]); /* as rows will be read */
        if (!field) {
            asy_set_error(error, error_size, "%s/field: %s: %s has no field \"%s\"", where,
                          column->field, desc->short_name, column->segment[i]);
            return NULL;
        }
        bool last = i == column->depth - 1;
        if (!last && field->type != PROTOBUF_C_TYPE_MESSAGE) {
            asy_set_error(error, error_size, "%s/field: %s: %s is not a message", where,
                          column->field, column->segment[i]);
            return NULL;
        }
        if (!last)
            desc = field->descriptor;
    }
    *desc_p = desc;
    return field;
}

/* The column's type must make a value the field takes. Returns 0 or ASY_ECONFIG with error
   set. */
static int s_check_type(const asy_import_column_t *column, const ProtobufCFieldDescriptor *field,
                        const char *where, char *error, size_t error_size)
{
    const char *message_name = field->type == PROTOBUF_C_TYPE_MESSAGE
                                   ? ((const ProtobufCMessageDescriptor *)field->descriptor)->name
                                   : "";
    bool number = field->type != PROTOBUF_C_TYPE_STRING && field->type != PROTOBUF_C_TYPE_BYTES &&
                  field->type != PROTOBUF_C_TYPE_BOOL && field->type != PROTOBUF_C_TYPE_ENUM &&
                  field->type != PROTOBUF_C_TYPE_MESSAGE;
    const char *wanted = NULL;
    if (column->type == ASY_IMPORT_DATETIME && strcmp(message_name, S_TIMESTAMP) != 0)
        wanted = "a datetime";
    else if (column->type == ASY_IMPORT_DATE && strcmp(message_name, S_DATE) != 0)
        wanted = "a date";
    else if (column->type == ASY_IMPORT_INTEGER && !number)
        wanted = "an integer";
    else if (column->type == ASY_IMPORT_BOOLEAN && field->type != PROTOBUF_C_TYPE_BOOL)
        wanted = "a boolean";
    if (wanted) {
        asy_set_error(error, error_size, "%s/type: %s holds %s, not %s: every row would be refused",
                      where, column->field,
                      !strcmp(message_name, S_TIMESTAMP)    ? "a time (type = datetime)"
                      : !strcmp(message_name, S_DATE)       ? "a date (type = date)"
                      : field->type == PROTOBUF_C_TYPE_BOOL ? "yes or no (type = boolean)"
                      : number                              ? "a number (type = integer)"
                                                            : "text (type = text)",
                      wanted);
        return ASY_ECONFIG;
    }
    return 0;
}

/* The field must take one cell's value as the column gives it: a list column into a repeated
   field, a single value into a single one, text into a value rather than into a whole message
   (an event body, say). Returns 0 or ASY_ECONFIG with error set. */
static int s_check_shape(const asy_import_column_t *column, const ProtobufCFieldDescriptor *field,
                         const char *where, char *error, size_t error_size)
{
    bool repeated = field->label == PROTOBUF_C_LABEL_REPEATED;
    const char *name = field->type == PROTOBUF_C_TYPE_MESSAGE
                           ? ((const ProtobufCMessageDescriptor *)field->descriptor)->name
                           : NULL;
    if (name && strcmp(name, S_TIMESTAMP) != 0 && strcmp(name, S_DATE) != 0)
        asy_set_error(error, error_size,
                      "%s/field: %s is a whole message (%s), not a value: map a field inside it "
                      "(%s.FIELD): every row would be refused",
                      where, column->field, name, column->field);
    else if (repeated && !column->separator)
        asy_set_error(error, error_size,
                      "%s/field: %s holds a list: add list = \";\" (the character that separates "
                      "the cell's items): every row would be refused",
                      where, column->field);
    else if (!repeated && column->separator)
        asy_set_error(error, error_size,
                      "%s/list: %s holds one value, not a list: remove list: every row would be "
                      "refused",
                      where, column->field);
    else
        return 0;
    return ASY_ECONFIG;
}

/* Each value the enum field is mapped to, read as a row's would be. Returns 0, or ASY_ECONFIG
   (or ASY_ENOMEM) with error set. */
static int s_check_enum_values(const asy_import_column_t *column,
                               const ProtobufCMessageDescriptor *desc,
                               const ProtobufCFieldDescriptor *field, const char *where,
                               char *error, size_t error_size)
{
    for (size_t i = 0; i < column->value_count; i++) {
        const char *to = column->values[i].to;
        if (!to || !*to)
            continue;
        json_t *value = json_string(to);
        if (value && field->label == PROTOBUF_C_LABEL_REPEATED)
            value = json_pack("[o]", value);
        json_t *object =
            value ? json_pack("{so}", column->segment[column->depth - 1], value) : NULL;
        ProtobufCMessage *message = NULL;
        char why[512] = "out of memory";
        int rc = object ? asy_json_to_message(object, desc, &message, why, sizeof why) : ASY_ENOMEM;
        if (message)
            protobuf_c_message_free_unpacked(message, NULL);
        json_decref(object);
        if (rc == ASY_EINVAL) {
            asy_set_error(error, error_size, "%s/value \"%s\": to: %s", where,
                          column->values[i].from, why);
            return ASY_ECONFIG;
        }
        if (rc != 0) {
            asy_set_error(error, error_size, "%s: %s", where, why);
            return rc;
        }
    }
    return 0;
}

/* Checks at load time what each row would otherwise refuse one by one: the column's field
   path names a field of the event (or an identifier submit pseudonymises), and the values
   an enum field is mapped to are names of that enum. */
static int s_check_field(const asy_import_column_t *column, const char *where, char *error,
                         size_t error_size)
{
    int rc = s_check_kind_values(column, where, error, error_size);
    if (rc != 0 || column->is_kind || column->identifier)
        return rc;
    const ProtobufCMessageDescriptor *desc = NULL;
    const ProtobufCFieldDescriptor *field = s_find_field(column, &desc, where, error, error_size);
    if (!field)
        return ASY_ECONFIG;
    if ((rc = s_check_type(column, field, where, error, error_size)) != 0 ||
        (rc = s_check_shape(column, field, where, error, error_size)) != 0)
        return rc;
    if (field->type != PROTOBUF_C_TYPE_ENUM)
        return 0;
    return s_check_enum_values(column, desc, field, where, error, error_size);
}

bool asy_import_flag(const char *value, bool *out)
{
    if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1"))
        *out = true;
    else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcmp(value, "0"))
        *out = false;
    else
        return false;
    return true;
}

/* True, with error set (WHERE SEPARATOR KEY: given twice ...), if item's key but the one that
   repeats on purpose was given before it in section: which one is meant cannot be told. */
static bool s_given_twice(zconfig_t *section, zconfig_t *item, const char *repeats,
                          const char *where, const char *separator, char *error, size_t error_size)
{
    const char *name = zconfig_name(item);
    if (strcmp(name, repeats) == 0 || !asy_sections_given_before(section, item))
        return false;
    asy_set_error(error, error_size, "%s%s%s: given twice: which one is meant cannot be told",
                  where, separator, name);
    return true;
}

/* Reads a `value` section (one from, one to) into entry: false if it is not one. */
static bool s_load_value(asy_import_value_t *entry, zconfig_t *item)
{
    entry->from = zconfig_get(item, "from", NULL);
    entry->to = zconfig_get(item, "to", NULL);
    int froms = 0, tos = 0;
    for (zconfig_t *key = zconfig_child(item); key; key = zconfig_next(key)) {
        froms += !strcmp(zconfig_name(key), "from");
        tos += !strcmp(zconfig_name(key), "to");
    }
    return entry->from && entry->to && froms == 1 && tos == 1;
}

/* Reads one key of a `column` section into column: false if its value is bad; *known is
   false for a key a column does not have. */
static bool s_column_key(asy_import_column_t *column, zconfig_t *item, const char *name,
                         const char *value, bool *known)
{
    *known = true;
    bool ok = true;
    if (!strcmp(name, "header"))
        column->header = value;
    else if (!strcmp(name, "field")) {
        char snake[256];
        s_snake(value, snake, sizeof snake);
        asy_import_camel(snake, column->field, sizeof column->field);
        ok = value[0] != '\0';
    } else if (!strcmp(name, "type")) {
        static const char *types[] = {"text", "datetime", "date", "integer", "boolean"};
        ok = false;
        for (int i = 0; i < 5; i++)
            if (!strcmp(value, types[i])) {
                column->type = (asy_import_type_t)i;
                ok = true;
            }
    } else if (!strcmp(name, "format")) {
        column->format = !strcmp(value, "auto")         ? ASY_IMPORT_AUTO
                         : !strcmp(value, "iso8601")    ? ASY_IMPORT_ISO
                         : !strcmp(value, "dd/mm/yyyy") ? ASY_IMPORT_DMY
                                                        : (ok = false, ASY_IMPORT_AUTO);
    } else if (!strcmp(name, "list")) {
        column->separator = value[0];
        ok = strlen(value) == 1;
    } else if (!strcmp(name, "required"))
        ok = asy_import_flag(value, &column->required);
    else if (!strcmp(name, "default"))
        column->fallback = value;
    else if (!strcmp(name, "value"))
        ok = s_load_value(&column->values[column->value_count++], item);
    else
        *known = false;
    return ok;
}

/* Makes room for the `value` sections of a `column` section. Returns 0 or ASY_ENOMEM with
   error set. */
static int s_alloc_values(asy_import_column_t *column, zconfig_t *section, char *error,
                          size_t error_size)
{
    size_t values = 0;
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item))
        values += strcmp(zconfig_name(item), "value") == 0;
    column->values = values ? calloc(values, sizeof *column->values) : NULL;
    if (values && !column->values) {
        asy_set_error(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    return 0;
}

/* Reads the keys of a `column` section into column. Returns 0 or ASY_ECONFIG with error
   set. */
static int s_load_column_keys(asy_import_column_t *column, zconfig_t *section, const char *where,
                              char *error, size_t error_size)
{
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item)) {
        const char *name = zconfig_name(item);
        const char *value = zconfig_value(item) ? zconfig_value(item) : "";
        /* `value` repeats on purpose; an unknown key is refused below */
        if (s_given_twice(section, item, "value", where, "/", error, error_size))
            return ASY_ECONFIG;
        bool known;
        bool ok = s_column_key(column, item, name, value, &known);
        if (!known) {
            asy_set_error(error, error_size,
                          "%s/%s: unknown key (known: header, field, type, format, "
                          "list, required, default, value)",
                          where, name);
            return ASY_ECONFIG;
        }
        if (!ok) {
            asy_set_error(error, error_size, "%s/%s: bad value \"%s\"%s", where, name, value,
                          !strcmp(name, "type")     ? " (text, datetime, date, integer or boolean)"
                          : !strcmp(name, "format") ? " (auto, iso8601 or dd/mm/yyyy)"
                          : !strcmp(name, "list")   ? " (one separator character)"
                          : !strcmp(name, "value")  ? " (a value section needs one from and one to)"
                                                    : "");
            return ASY_ECONFIG;
        }
    }
    return 0;
}

/* Cuts the column's field path at its dots into segment[]. Returns 0 or ASY_ECONFIG with
   error set. */
static int s_split_path(asy_import_column_t *column, const char *where, char *error,
                        size_t error_size)
{
    snprintf(column->field_split, sizeof column->field_split, "%s", column->field);
    char *save = NULL;
    for (char *part = strtok_r(column->field_split, ".", &save); part;
         part = strtok_r(NULL, ".", &save)) {
        if (column->depth == ASY_IMPORT_PATH_DEPTH) {
            asy_set_error(error, error_size, "%s/field: deeper than %d levels", where,
                          ASY_IMPORT_PATH_DEPTH);
            return ASY_ECONFIG;
        }
        column->segment[column->depth++] = part;
    }
    if (column->depth == 0) {
        asy_set_error(error, error_size, "%s/field: empty path", where);
        return ASY_ECONFIG;
    }
    return 0;
}

/* Reads one `column` section. Returns 0 or ASY_ECONFIG with error set. */
static int s_load_column(asy_import_column_t *column, zconfig_t *section, const char *where,
                         char *error, size_t error_size)
{
    column->index = -1;
    int rc = s_alloc_values(column, section, error, error_size);
    if (rc == 0)
        rc = s_load_column_keys(column, section, where, error, error_size);
    if (rc != 0)
        return rc;
    if (!column->header || !column->header[0] || !column->field[0]) {
        asy_set_error(error, error_size, "%s: needs header and field", where);
        return ASY_ECONFIG;
    }
    column->is_kind = !strcmp(column->field, "kind");
    if ((rc = s_split_path(column, where, error, error_size)) != 0)
        return rc;
    column->body_kind = column->depth > 1 ? asy_import_kind(column->segment[0]) : 0;
    column->identifier = !strcmp(column->field, "nhsNumber") ||
                         !strcmp(column->field, "personRef") || !strcmp(column->field, "caseRef");
    if (column->identifier && (column->type != ASY_IMPORT_TEXT || column->separator)) {
        /* a conversion would refuse rows quoting the identifier, or change what is hashed */
        asy_set_error(error, error_size,
                      "%s: %s is an identifier: its column is text as given (no type other "
                      "than text, no list), pseudonymised at the site and never shown",
                      where, column->field);
        return ASY_ECONFIG;
    }
    return s_check_field(column, where, error, error_size);
}

void asy_import_mapping_free(asy_import_mapping_t *mapping)
{
    for (size_t i = 0; i < mapping->column_count; i++)
        free(mapping->columns[i].values);
    free(mapping->columns);
    zconfig_destroy(&mapping->root);
}

/* Opens the mapping file at path into mapping->root: its `import` section, or NULL with
   error set. */
static zconfig_t *s_open_section(asy_import_mapping_t *mapping, const char *path, char *error,
                                 size_t error_size)
{
    FILE *probe = fopen(path, "r");
    if (!probe) {
        asy_set_error(error, error_size, "cannot read mapping %s: %s", path, strerror(errno));
        return NULL;
    }
    fclose(probe);
    char why[256];
    mapping->root = asy_config_load(path, why, sizeof why);
    if (!mapping->root) {
        asy_set_error(error, error_size, "mapping %s %s", path, why);
        return NULL;
    }
    zconfig_t *section = zconfig_locate(mapping->root, "import");
    if (!section)
        asy_set_error(error, error_size, "%s: no `import` section", path);
    return section;
}

/* Makes room for the `column` sections of section. Returns 0 or ASY_ENOMEM with error set. */
static int s_alloc_columns(asy_import_mapping_t *mapping, zconfig_t *section, char *error,
                           size_t error_size)
{
    size_t columns = 0;
    for (zconfig_t *item = zconfig_child(section); item; item = zconfig_next(item))
        columns += strcmp(zconfig_name(item), "column") == 0;
    mapping->columns = calloc(columns ? columns : 1, sizeof *mapping->columns);
    if (!mapping->columns) {
        asy_set_error(error, error_size, "out of memory");
        return ASY_ENOMEM;
    }
    return 0;
}

/* Reads a `column` section as the mapping's next column: one kind column at most, one column
   per field. Returns 0, or ASY_ECONFIG (or ASY_ENOMEM) with error set. */
static int s_add_column(asy_import_mapping_t *mapping, zconfig_t *item, const char *path,
                        char *error, size_t error_size)
{
    char where[512];
    size_t index = mapping->column_count++;
    snprintf(where, sizeof where, "%s: import/column %zu", path, index + 1);
    int rc = s_load_column(&mapping->columns[index], item, where, error, error_size);
    if (rc != 0)
        return rc;
    if (mapping->columns[index].is_kind) {
        if (mapping->kind_column >= 0) {
            asy_set_error(error, error_size, "%s: two columns give the kind", where);
            return ASY_ECONFIG;
        }
        mapping->kind_column = (int)index;
    }
    for (size_t other = 0; other < index; other++)
        if (!strcmp(mapping->columns[other].field, mapping->columns[index].field)) {
            asy_set_error(error, error_size, "%s: field %s is already fed by column %zu", where,
                          mapping->columns[index].field, other + 1);
            return ASY_ECONFIG;
        }
    return 0;
}

/* Reads one key of the `import` section. Returns 0, or ASY_ECONFIG (or ASY_ENOMEM) with error
   set. */
static int s_mapping_key(asy_import_mapping_t *mapping, zconfig_t *section, zconfig_t *item,
                         const char *path, char *error, size_t error_size)
{
    const char *name = zconfig_name(item);
    const char *value = zconfig_value(item) ? zconfig_value(item) : "";
    /* `column` repeats on purpose; an unknown key is refused below */
    if (s_given_twice(section, item, "column", path, ": import/", error, error_size))
        return ASY_ECONFIG;
    if (!strcmp(name, "kind")) {
        mapping->fixed_kind = asy_import_kind(value);
        if (!mapping->fixed_kind) {
            asy_set_error(error, error_size, "%s: import/kind: unknown event kind \"%s\"", path,
                          value);
            return ASY_ECONFIG;
        }
    } else if (!strcmp(name, "delimiter")) {
        mapping->delimiter = !strcmp(value, "tab") ? '\t' : value[0];
        if (strcmp(value, "tab") != 0 && strlen(value) != 1) {
            asy_set_error(error, error_size, "%s: import/delimiter: one character or \"tab\"",
                          path);
            return ASY_ECONFIG;
        }
    } else if (!strcmp(name, "column"))
        return s_add_column(mapping, item, path, error, error_size);
    else {
        asy_set_error(error, error_size,
                      "%s: import/%s: unknown key (known: kind, delimiter, "
                      "column)",
                      path, name);
        return ASY_ECONFIG;
    }
    return 0;
}

/* True if some row can be of kind: the fixed kind, or one a kind column's value maps give
   (a kind column without value maps may give any). */
static bool s_kind_reachable(const asy_import_mapping_t *mapping, int kind)
{
    if (mapping->fixed_kind == kind)
        return true;
    if (mapping->kind_column < 0)
        return false;
    const asy_import_column_t *column = &mapping->columns[mapping->kind_column];
    if (column->value_count == 0)
        return true;
    for (size_t i = 0; i < column->value_count; i++)
        if (column->values[i].to && asy_import_kind(column->values[i].to) == kind)
            return true;
    return false;
}

/* A column into an event body is filled only for rows of that body's kind (so one mapping
   can serve an export of mixed kinds); one whose kind no row can have would be dropped from
   every row, `required` or not. Returns 0 or ASY_ECONFIG with error set. */
static int s_check_kinds(const asy_import_mapping_t *mapping, const char *path, char *error,
                         size_t error_size)
{
    for (size_t i = 0; i < mapping->column_count; i++) {
        const asy_import_column_t *column = &mapping->columns[i];
        if (!column->body_kind || s_kind_reachable(mapping, column->body_kind))
            continue;
        const char *name = asy_kind_name(column->body_kind);
        asy_set_error(error, error_size,
                      "%s: import/column %zu: field %s is filled only in %s events, and this "
                      "mapping makes none (%s): the column would be dropped from every row",
                      path, i + 1, column->field, name ? name : "?",
                      mapping->kind_column < 0 ? "import/kind fixes every row's kind"
                                               : "its kind column's values map to other kinds");
        return ASY_ECONFIG;
    }
    return 0;
}

int asy_import_mapping_load(asy_import_mapping_t *mapping, const char *path, char *error,
                            size_t error_size)
{
    memset(mapping, 0, sizeof *mapping);
    mapping->delimiter = ',';
    mapping->kind_column = -1;
    zconfig_t *section = s_open_section(mapping, path, error, error_size);
    if (!section)
        return ASY_ECONFIG;
    int rc = s_alloc_columns(mapping, section, error, error_size);
    for (zconfig_t *item = zconfig_child(section); item && rc == 0; item = zconfig_next(item))
        rc = s_mapping_key(mapping, section, item, path, error, error_size);
    if (rc != 0)
        return rc;
    if (!mapping->fixed_kind && mapping->kind_column < 0) {
        asy_set_error(error, error_size,
                      "%s: say which event each row is: import/kind = KIND, or a "
                      "column with field = kind",
                      path);
        return ASY_ECONFIG;
    }
    return s_check_kinds(mapping, path, error, error_size);
}

/* If the submitter's message names a mapped field, the column that feeds it. */
const asy_import_column_t *asy_import_column_of(const asy_import_mapping_t *mapping,
                                                const char *message)
{
    char field[256];
    const char *colon = strchr(message, ':');
    size_t length = colon ? (size_t)(colon - message) : 0;
    if (length == 0 || length >= sizeof field)
        return NULL;
    char named[256], mapped[256];
    memcpy(named, message, length);
    named[length] = '\0';
    s_snake(named, field, sizeof field);
    for (size_t i = 0; i < mapping->column_count; i++) {
        s_snake(mapping->columns[i].field, mapped, sizeof mapped);
        if (!strcmp(mapped, field))
            return &mapping->columns[i];
    }
    return NULL;
}
