/*  sections.c: see sections.h.  */
#include "sections.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_CONFIG_MAX (1024 * 1024) /* bytes: the largest mapping in use is under 8 KiB */

/* The text of the file at path (NUL-terminated, to free), or NULL with why[] set. */
static char *s_read_text(const char *path, char *why, size_t why_size)
{
    FILE *file = fopen(path, "r");
    if (!file) {
        snprintf(why, why_size, "cannot read it: %s", strerror(errno));
        return NULL;
    }
    struct stat status;
    char *text = NULL;
    if (fstat(fileno(file), &status) != 0)
        snprintf(why, why_size, "cannot read it: %s", strerror(errno));
    else if (S_ISDIR(status.st_mode))
        snprintf(why, why_size, "is a folder, not a file");
    else if (!(text = malloc(S_CONFIG_MAX + 1)))
        snprintf(why, why_size, "cannot be read: out of memory");
    if (!text) {
        fclose(file);
        return NULL;
    }
    size_t length = fread(text, 1, S_CONFIG_MAX + 1, file);
    bool failed = ferror(file) != 0;
    int error = errno;
    fclose(file);
    if (failed || length > S_CONFIG_MAX || memchr(text, '\0', length)) {
        if (failed)
            snprintf(why, why_size, "cannot read it: %s", strerror(error));
        else
            snprintf(why, why_size, "%s: not a configuration file",
                     length > S_CONFIG_MAX ? "is larger than 1 MiB" : "holds a NUL byte");
        free(text);
        return NULL;
    }
    text[length] = '\0';
    return text;
}

/* The key of a `key = value` line: the text before '=', without its blanks. */
static void s_key(const char *line, const char *equals, char *key, size_t key_size)
{
    while (line < equals && (*line == ' ' || *line == '\t'))
        line++;
    size_t length = (size_t)(equals - line);
    while (length > 0 && (line[length - 1] == ' ' || line[length - 1] == '\t'))
        length--;
    snprintf(key, key_size, "%.*s", (int)(length < 64 ? length : 64), line);
}

/* True unless a line of text (cut into lines in place) has an unquoted value with a '#'
   right after one of its characters (sections.h, asy_config_load); else false, with why[]. */
static bool s_uncut(char *text, char *why, size_t why_size)
{
    char *next = text;
    for (int number = 1; next; number++) {
        char *line = next;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *equals = strchr(line, '='), *hash = strchr(line, '#');
        if (!equals || (hash && hash < equals))
            continue; /* no value, or a comment */
        char *value = equals + 1 + strspn(equals + 1, " \t");
        if (*value == '"' || *value == '\'')
            continue; /* quoted: zconfig keeps the '#' */
        hash = strchr(value, '#');
        /* "key = # comment" is a key with no value; "key = #3" a value lost whole */
        bool lost = hash == value && hash[1] && !isspace((unsigned char)hash[1]);
        if (!hash || (!lost && (hash == value || hash[-1] == ' ' || hash[-1] == '\t')))
            continue;
        char key[72];
        s_key(line, equals, key, sizeof key);
        snprintf(why, why_size,
                 "at line %d: the value of %s is cut at '#' (a comment starts there): quote the "
                 "value, or put a blank before a comment",
                 number, key);
        return false;
    }
    return true;
}

zconfig_t *asy_config_load(const char *path, char *why, size_t why_size)
{
    char *text = s_read_text(path, why, why_size);
    if (!text)
        return NULL;
    char *start = strncmp(text, "\xEF\xBB\xBF", 3) == 0 ? text + 3 : text;
    zconfig_t *root = zconfig_str_load(start);
    if (!root)
        snprintf(why, why_size,
                 "is not valid zconfig text (indent children by 4 spaces, `key = "
                 "value`; zconfig names the line above)");
    else if (!s_uncut(start, why, why_size))
        zconfig_destroy(&root);
    free(text);
    return root;
}

bool asy_sections_known(zconfig_t *root, char *why, size_t why_size)
{
    static const char *const known[] = {"agent", "broker", "monitor"};
    for (zconfig_t *section = zconfig_child(root); section; section = zconfig_next(section)) {
        const char *name = zconfig_name(section);
        bool found = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !found; i++)
            found = name && strcmp(name, known[i]) == 0;
        if (!found) {
            snprintf(why, why_size,
                     "\"%s\" is not a section of any advsync program (they are agent, broker, "
                     "monitor): misspelt?",
                     name ? name : "");
            return false;
        }
        const char *value = zconfig_value(section);
        if (value && *value) {
            snprintf(why, why_size,
                     "%s = ...: a section takes no value: its keys go on the "
                     "lines under it, indented 4 spaces",
                     name);
            return false;
        }
        /* a key indented one level too deep becomes a child of the key above it, which no
           program reads: it would be silently left at its default */
        for (zconfig_t *key = zconfig_child(section); key; key = zconfig_next(key)) {
            zconfig_t *under = zconfig_child(key);
            if (under) {
                snprintf(why, why_size,
                         "%s/%s: \"%s\" is indented under it (8 spaces): keys of a section "
                         "are indented 4",
                         name, zconfig_name(key) ? zconfig_name(key) : "",
                         zconfig_name(under) ? zconfig_name(under) : "");
                return false;
            }
        }
    }
    return true;
}

bool asy_sections_given_before(zconfig_t *parent, zconfig_t *item)
{
    const char *name = zconfig_name(item);
    for (zconfig_t *before = zconfig_child(parent); before && before != item;
         before = zconfig_next(before))
        if (name && zconfig_name(before) && strcmp(zconfig_name(before), name) == 0)
            return true;
    return false;
}
