/* The checker of the wire's pickle dialect, compiled (pycos.proto._wirecheck).
 *
 * Owns check(data, max_depth, buffers) -> None | str: the same rules as the reference
 * implementation pycos/proto/wirecheck.py (read its docstring for what the dialect accepts and
 * why), returning None when the payload is accepted and the reason as a str when it is not.
 * It only reads the buffer it is given; every index is checked against the payload's length
 * before use, and every table it grows is bounded by that length. Uses only the Python C API.
 * The memory costs (COST_*, C_*) and the second pass over the graph of what holds what
 * (deepest()) are the reference's (COST_*, _C_* and _deepest() there): both checkers must
 * refuse the same payloads at the same byte. Also the builders' charge (wirecost.charge).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <stdint.h>

enum { ATOM, STR, BYTES, TUPLE, LIST, DICT, SET, FROZENSET, BUILDER, OBJECT, BUFFER };

typedef struct {
    int32_t kind;
    int32_t depth;
    uint32_t str_off; /* for STR: offset of its bytes in the payload; for LIST, DICT, SET: its
                         node (1 + the memo index where it was first stored), 0 if none */
    uint32_t str_len; /* for STR: its length; in the memo entry of a node: 1 once that
                         container was taken back from the memo */
} Item;

#define IS_MUTABLE(kind) ((kind) == LIST || (kind) == DICT || (kind) == SET)

/* What decoding may allocate: bytes per byte of payload, and a fixed allowance; what the
 * unpickler allocates per opcode (see wirecheck.py). */
#define COST_PER_BYTE 100
#define COST_SLACK 65536
#define C_PUSH 16
#define C_INT 48
#define C_FLOAT 40
#define C_TUPLE 72
#define C_TUPLE_ITEM 8
#define C_FROZENSET 232
#define C_SET_ITEM 48
#define C_LIST 72
#define C_DICT 80
#define C_SET 232
#define C_APPEND 16
#define C_SETITEM 96
#define C_READONLY 200
/* The fixed part of each opcode's cost (the item-dependent parts are added where the items
 * are counted); 0 for the opcodes that allocate nothing or are refused. */
static const int16_t BASE_COST[256] = {
    [0x4A] = C_INT, [0x4B] = C_INT, [0x4D] = C_INT, [0x47] = C_FLOAT,
    [0x8A] = 48, [0x8B] = 48, [0x8C] = 80, [0x58] = 80, [0x8D] = 80,
    [0x43] = 64, [0x42] = 64, [0x8E] = 64, [0x96] = 80,
    [0x94] = C_PUSH, [0x68] = C_PUSH, [0x6A] = C_PUSH,
    [0x4E] = C_PUSH, [0x88] = C_PUSH, [0x89] = C_PUSH, [0x28] = C_PUSH, [0x29] = C_PUSH,
    [0x85] = C_TUPLE + C_TUPLE_ITEM, [0x86] = C_TUPLE + 2 * C_TUPLE_ITEM,
    [0x87] = C_TUPLE + 3 * C_TUPLE_ITEM, [0x74] = C_TUPLE, [0x91] = C_FROZENSET,
    [0x5D] = C_LIST, [0x7D] = C_DICT, [0x8F] = C_SET, [0x61] = C_APPEND, [0x73] = C_SETITEM,
    [0x93] = C_PUSH, [0x52] = C_PUSH, [0x97] = C_PUSH, [0x98] = C_READONLY,
};

#define QUOTE_(x) #x
#define QUOTE(x) QUOTE_(x)
#define TOO_COSTLY "the values it makes would take more than " QUOTE(COST_PER_BYTE) \
    " bytes per byte of payload"

/* Tables start in a small array inside the struct (no allocation for the small payloads that
 * are most of the traffic) and move to the heap when they outgrow it. */
#define SMALL 48

typedef struct {
    Item *items;
    Py_ssize_t len, cap;
    Item small[SMALL];
} Items;

typedef struct {
    Py_ssize_t *pos;
    Py_ssize_t len, cap;
    Py_ssize_t small[SMALL];
} Marks;

static const char MODULE[] = "pycos.proto._w";

static int
items_grow(Items *s)
{
    {
        Py_ssize_t cap = s->cap * 2;
        Item *n;
        if (s->items == s->small) {
            n = PyMem_Malloc((size_t)cap * sizeof(Item));
            if (n != NULL) {
                memcpy(n, s->small, sizeof(s->small));
            }
        }
        else {
            n = PyMem_Realloc(s->items, (size_t)cap * sizeof(Item));
        }
        if (n == NULL) {
            return -1;
        }
        s->items = n;
        s->cap = cap;
    }
    return 0;
}

static inline int
items_push(Items *s, Item it)
{
    if (s->len == s->cap && items_grow(s) < 0) {
        return -1;
    }
    s->items[s->len++] = it;
    return 0;
}

static int
marks_push(Marks *m, Py_ssize_t pos)
{
    if (m->len == m->cap) {
        Py_ssize_t cap = m->cap * 2;
        Py_ssize_t *n;
        if (m->pos == m->small) {
            n = PyMem_Malloc((size_t)cap * sizeof(Py_ssize_t));
            if (n != NULL) {
                memcpy(n, m->small, sizeof(m->small));
            }
        }
        else {
            n = PyMem_Realloc(m->pos, (size_t)cap * sizeof(Py_ssize_t));
        }
        if (n == NULL) {
            return -1;
        }
        m->pos = n;
        m->cap = cap;
    }
    m->pos[m->len++] = pos;
    return 0;
}

static uint64_t
read_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

#define FAIL(msg) do { why = (msg); goto refused; } while (0)
#define TOP_FENCE (marks.len ? marks.pos[marks.len - 1] : 0)

static int
is_builder_name(const unsigned char *p, Py_ssize_t n)
{
    return n == 1 && (p[0] == 'o' || p[0] == 'u' || p[0] == 'e' || p[0] == 'f');
}

/* Put items [base, len) into the container at base - 1, which must be of kind `kind`.
 * Sets *regrown when that container was taken back from the memo before. */
static const char *
add_items(Items *st, Marks *marks, Py_ssize_t base, int kind, int max_depth, const Items *memo,
          int *regrown)
{
    if (base < 1 || (marks->len && marks->pos[marks->len - 1] > base - 1)) {
        return "an item opcode without its container or items";
    }
    Item *c = &st->items[base - 1];
    if (c->kind != kind) {
        return "items added to a container of another kind";
    }
    int32_t depth = c->depth;
    for (Py_ssize_t i = base; i < st->len; i++) {
        if (st->items[i].kind == BUILDER) {
            return "a builder used as a value";
        }
        if (st->items[i].depth + 1 > depth) {
            depth = st->items[i].depth + 1;
        }
    }
    if (depth > max_depth) {
        return "nesting deeper than the limit";
    }
    c->depth = depth;
    st->len = base;
    if (c->str_off && memo->items[c->str_off - 1].str_len) {
        *regrown = 1;
    }
    return NULL;
}

/* Replace items [base, len) by one container of `kind`. */
static const char *
collapse(Items *st, Py_ssize_t base, int kind, int max_depth)
{
    int32_t depth = 1;
    for (Py_ssize_t i = base; i < st->len; i++) {
        if (st->items[i].kind == BUILDER) {
            return "a builder used as a value";
        }
        if (st->items[i].depth + 1 > depth) {
            depth = st->items[i].depth + 1;
        }
    }
    if (depth > max_depth) {
        return "nesting deeper than the limit";
    }
    st->len = base;
    Item it = {kind, depth, 0, 0};
    st->items[st->len++] = it; /* room: base < old len */
    return NULL;
}

/* ---- the second pass: the graph of what holds what (see _deepest in wirecheck.py) ---- */
typedef struct {
    Py_ssize_t *v;
    Py_ssize_t len, cap;
} Vec;

static int
vec_push(Vec *a, Py_ssize_t x)
{
    if (a->len == a->cap) {
        Py_ssize_t cap = a->cap ? a->cap * 2 : 64;
        Py_ssize_t *n = PyMem_Realloc(a->v, (size_t)cap * sizeof(Py_ssize_t));
        if (n == NULL) {
            return -1;
        }
        a->v = n;
        a->cap = cap;
    }
    a->v[a->len++] = x;
    return 0;
}

typedef struct {
    Vec head, tail;   /* per node: its first and last edge, -1 when none */
    Vec next, child;  /* per edge: the next edge of the same node, the node it leads to */
} Graph;

static Py_ssize_t
graph_node(Graph *g)
{
    if (vec_push(&g->head, -1) < 0 || vec_push(&g->tail, -1) < 0) {
        return -1;
    }
    return g->head.len - 1;
}

static int
graph_edge(Graph *g, Py_ssize_t parent, Py_ssize_t child)
{
    if (child < 0) {
        return 0; /* a value that holds nothing */
    }
    Py_ssize_t e = g->child.len;
    if (vec_push(&g->child, child) < 0 || vec_push(&g->next, -1) < 0) {
        return -1;
    }
    if (g->tail.v[parent] < 0) {
        g->head.v[parent] = e;
    }
    else {
        g->next.v[g->tail.v[parent]] = e;
    }
    g->tail.v[parent] = e;
    return 0;
}

/* Items stack[base:] become the children of `parent`, and leave the stack. */
static int
graph_take(Graph *g, Vec *stack, Py_ssize_t base, Py_ssize_t parent)
{
    for (Py_ssize_t i = base; i < stack->len; i++) {
        if (graph_edge(g, parent, stack->v[i]) < 0) {
            return -1;
        }
    }
    stack->len = base;
    return 0;
}

/* The depth of the deepest container the (already checked) payload b[0:last] builds, or
 * more than max_depth as soon as that is certain; -1 when memory ran out. */
static Py_ssize_t
deepest(const unsigned char *b, Py_ssize_t last, int max_depth)
{
    Graph g = {{0}};
    Vec stack = {0}, marks = {0}, memo = {0}, path = {0}, cursor = {0}, depth = {0};
    unsigned char *state = NULL;
    Py_ssize_t result = -1, pos = 2;
    while (pos < last) {
        unsigned char op = b[pos++];
        Py_ssize_t n = -1, base;
        switch (op) {
        case 0x4A: pos += 4; goto atom;
        case 0x4B: pos += 1; goto atom;
        case 0x4D: pos += 2; goto atom;
        case 0x47: pos += 8; goto atom;
        case 0x8A: case 0x8C: case 0x43: n = 1; goto counted;
        case 0x8B: case 0x58: case 0x42: n = 4; goto counted;
        case 0x8D: case 0x8E: case 0x96: n = 8; goto counted;
        case 0x4E: case 0x88: case 0x89: case 0x97:
        atom:
            if (vec_push(&stack, -1) < 0) goto done;
            break;
        counted:
            pos += n + (Py_ssize_t)read_le(b + pos, (int)n);
            goto atom;
        case 0x94: /* MEMOIZE */
            if (vec_push(&memo, stack.v[stack.len - 1]) < 0) goto done;
            break;
        case 0x68: case 0x6A: { /* BINGET, LONG_BINGET */
            int k = op == 0x68 ? 1 : 4;
            Py_ssize_t index = (Py_ssize_t)read_le(b + pos, k);
            pos += k;
            if (vec_push(&stack, memo.v[index]) < 0) goto done;
            break;
        }
        case 0x95: pos += 8; break; /* FRAME */
        case 0x28: if (vec_push(&marks, stack.len) < 0) goto done; break; /* MARK */
        case 0x30: stack.len--; break; /* POP */
        case 0x31: stack.len = marks.v[--marks.len]; break; /* POP_MARK */
        case 0x29: case 0x5D: case 0x7D: case 0x8F: { /* EMPTY_TUPLE/LIST/DICT/SET */
            Py_ssize_t node = graph_node(&g);
            if (node < 0 || vec_push(&stack, node) < 0) goto done;
            break;
        }
        case 0x85: case 0x86: case 0x87: case 0x74: case 0x91: { /* TUPLE1..3, TUPLE, FROZENSET */
            base = (op == 0x74 || op == 0x91) ? marks.v[--marks.len] : stack.len - (op - 0x85 + 1);
            Py_ssize_t node = graph_node(&g);
            if (node < 0 || graph_take(&g, &stack, base, node) < 0
                    || vec_push(&stack, node) < 0) goto done;
            break;
        }
        case 0x61: case 0x73: /* APPEND, SETITEM */
            base = stack.len - (op == 0x61 ? 1 : 2);
            if (graph_take(&g, &stack, base, stack.v[base - 1]) < 0) goto done;
            break;
        case 0x65: case 0x75: case 0x90: /* APPENDS, SETITEMS, ADDITEMS */
            base = marks.v[--marks.len];
            if (graph_take(&g, &stack, base, stack.v[base - 1]) < 0) goto done;
            break;
        case 0x93: /* STACK_GLOBAL */
            stack.len -= 1;
            stack.v[stack.len - 1] = -1;
            break;
        case 0x52: { /* REDUCE */
            Py_ssize_t node = graph_node(&g);
            if (node < 0 || graph_edge(&g, node, stack.v[stack.len - 1]) < 0) goto done;
            stack.len -= 1;
            stack.v[stack.len - 1] = node;
            break;
        }
        default: /* READONLY_BUFFER: nothing that nests */
            break;
        }
    }
    Py_ssize_t count = g.head.len;
    state = PyMem_Calloc((size_t)count + 1, 1);
    if (state == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (vec_push(&depth, 0) < 0 || vec_push(&cursor, 0) < 0) goto done;
    }
    result = 0;
    for (Py_ssize_t root = 0; root < count; root++) {
        if (state[root]) {
            continue;
        }
        path.len = 0;
        if (vec_push(&path, root) < 0) goto nomem;
        state[root] = 1;
        depth.v[root] = 1;
        cursor.v[root] = g.head.v[root];
        while (path.len) {
            Py_ssize_t cur = path.v[path.len - 1];
            Py_ssize_t e = cursor.v[cur];
            if (e >= 0) {
                cursor.v[cur] = g.next.v[e];
                Py_ssize_t child = g.child.v[e];
                if (state[child] == 1) {
                    continue; /* an edge back up the path */
                }
                if (state[child] == 2) {
                    if (depth.v[child] + 1 > depth.v[cur]) {
                        depth.v[cur] = depth.v[child] + 1;
                    }
                    continue;
                }
                state[child] = 1;
                depth.v[child] = 1;
                cursor.v[child] = g.head.v[child];
                if (vec_push(&path, child) < 0) goto nomem;
                if (path.len > max_depth) {
                    result = path.len;
                    goto done;
                }
                continue;
            }
            path.len--;
            state[cur] = 2;
            if (depth.v[cur] > max_depth) {
                result = depth.v[cur];
                goto done;
            }
            if (path.len && depth.v[cur] + 1 > depth.v[path.v[path.len - 1]]) {
                depth.v[path.v[path.len - 1]] = depth.v[cur] + 1;
            }
        }
        if (depth.v[root] > result) {
            result = depth.v[root];
        }
    }
    goto done;
nomem:
    result = -1;
done:
    PyMem_Free(g.head.v); PyMem_Free(g.tail.v); PyMem_Free(g.next.v); PyMem_Free(g.child.v);
    PyMem_Free(stack.v); PyMem_Free(marks.v); PyMem_Free(memo.v); PyMem_Free(path.v);
    PyMem_Free(cursor.v); PyMem_Free(depth.v); PyMem_Free(state);
    return result;
}

/* Check the payload b[0:end]. Returns 0 when accepted; 1 when refused (*why and *where set);
 * -1 with a Python exception set when memory ran out. When accepted, *left_out is what is
 * left of the memory budget and *reduces_out how many builder calls the payload makes. */
static int
run_check(const unsigned char *b, Py_ssize_t end, int max_depth, Py_ssize_t buffers,
          const char **why_out, Py_ssize_t *where, Py_ssize_t *left_out,
          Py_ssize_t *reduces_out)
{
    Items st, memo;
    Marks marks;
    st.items = st.small; st.len = 0; st.cap = SMALL;
    memo.items = memo.small; memo.len = 0; memo.cap = SMALL;
    marks.pos = marks.small; marks.len = 0; marks.cap = SMALL;
    const char *why = NULL;
    Py_ssize_t at = 0;
    int result = 0;
    int regrown = 0;
    Py_ssize_t reduces = 0;
    int64_t left = (int64_t)COST_PER_BYTE * end + COST_SLACK;

    if (end > (Py_ssize_t)UINT32_MAX) {
        FAIL("larger than 4 GiB");
    }
    if (end < 2 || b[0] != 0x80 || (b[1] != 4 && b[1] != 5)) {
        FAIL("it does not start with PROTO 4 or 5");
    }
    if (b[end - 1] != '.') {
        at = end - 1;
        FAIL("it does not end with STOP");
    }
    Py_ssize_t last = end - 1;
    Py_ssize_t pos = 2;
    at = last;
    while (pos < last) {
        if (left < 0) {
            FAIL(TOO_COSTLY);
        }
        unsigned char op = b[pos];
        at = pos;
        pos++;
        left -= BASE_COST[op];
        int fixed = 0, counted = 0, kind = ATOM, is_signed = 0;
        switch (op) {
        case 0x4A: fixed = 4; break;                 /* BININT */
        case 0x4B: fixed = 1; break;                 /* BININT1 */
        case 0x4D: fixed = 2; break;                 /* BININT2 */
        case 0x47: fixed = 8; break;                 /* BINFLOAT */
        case 0x8A: counted = 1; kind = ATOM; break;  /* LONG1 */
        case 0x8B: counted = 4; kind = ATOM; is_signed = 1; break; /* LONG4 */
        case 0x8C: counted = 1; kind = STR; break;   /* SHORT_BINUNICODE */
        case 0x58: counted = 4; kind = STR; break;   /* BINUNICODE */
        case 0x8D: counted = 8; kind = STR; break;   /* BINUNICODE8 */
        case 0x43: counted = 1; kind = BYTES; break; /* SHORT_BINBYTES */
        case 0x42: counted = 4; kind = BYTES; break; /* BINBYTES */
        case 0x8E: counted = 8; kind = BYTES; break; /* BINBYTES8 */
        case 0x96: counted = 8; kind = BYTES; break; /* BYTEARRAY8 */
        default: break;
        }
        if (fixed) {
            if (pos + fixed > last) {
                FAIL("truncated argument");
            }
            pos += fixed;
            Item it = {ATOM, 0, 0, 0};
            if (items_push(&st, it) < 0) goto nomem;
            continue;
        }
        if (counted) {
            if (pos + counted > last) {
                FAIL("truncated length");
            }
            uint64_t raw = read_le(b + pos, counted);
            pos += counted;
            if (is_signed && (raw & 0x80000000u)) {
                FAIL("a negative length");
            }
            if (raw > (uint64_t)(last - pos)) {
                FAIL("a length runs past the payload");
            }
            Item it = {kind, 0, 0, 0};
            if (kind == STR) {
                it.str_off = (uint32_t)pos;
                it.str_len = (uint32_t)raw;
            }
            pos += (Py_ssize_t)raw;
            left -= (kind == STR ? 4 : 1) * (int64_t)raw; /* a str: up to 4 bytes a char */
            if (items_push(&st, it) < 0) goto nomem;
            continue;
        }
        switch (op) {
        case 0x94: { /* MEMOIZE */
            if (st.len <= TOP_FENCE) FAIL("MEMOIZE with nothing to store");
            Item *top = &st.items[st.len - 1];
            if (IS_MUTABLE(top->kind) && top->str_off == 0) {
                top->str_off = (uint32_t)memo.len + 1; /* its node: where first stored */
            }
            if (items_push(&memo, *top) < 0) goto nomem;
            break;
        }
        case 0x68: case 0x6A: { /* BINGET, LONG_BINGET */
            int n = op == 0x68 ? 1 : 4;
            if (pos + n > last) FAIL("truncated memo index");
            uint64_t index = read_le(b + pos, n);
            pos += n;
            if (index >= (uint64_t)memo.len) FAIL("a memo index that was never stored");
            Item it = memo.items[index];
            if (IS_MUTABLE(it.kind)) {
                memo.items[it.str_off - 1].str_len = 1; /* taken back from the memo */
            }
            if (items_push(&st, it) < 0) goto nomem;
            break;
        }
        case 0x4E: case 0x88: case 0x89: { /* NONE, NEWTRUE, NEWFALSE */
            Item it = {ATOM, 0, 0, 0};
            if (items_push(&st, it) < 0) goto nomem;
            break;
        }
        case 0x95: { /* FRAME */
            if (pos + 8 > last) FAIL("truncated FRAME");
            uint64_t length = read_le(b + pos, 8);
            pos += 8;
            if (length > (uint64_t)(end - pos)) FAIL("FRAME runs past the payload");
            break;
        }
        case 0x28: /* MARK */
            if (marks_push(&marks, st.len) < 0) goto nomem;
            break;
        case 0x30: /* POP */
            if (st.len <= TOP_FENCE) FAIL("POP with nothing to pop");
            st.len--;
            break;
        case 0x31: /* POP_MARK */
            if (!marks.len) FAIL("POP_MARK without MARK");
            st.len = marks.pos[--marks.len];
            break;
        case 0x29: { /* EMPTY_TUPLE */
            Item it = {TUPLE, 1, 0, 0};
            if (items_push(&st, it) < 0) goto nomem;
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            Py_ssize_t base = st.len - (op - 0x85 + 1);
            if (base < TOP_FENCE) FAIL("TUPLE of missing items");
            if ((why = collapse(&st, base, TUPLE, max_depth)) != NULL) goto refused;
            break;
        }
        case 0x74: case 0x91: { /* TUPLE, FROZENSET */
            if (!marks.len) FAIL("an opcode that needs MARK without one");
            Py_ssize_t base = marks.pos[--marks.len];
            int64_t n = st.len - base;
            left -= (op == 0x74 ? C_TUPLE_ITEM : C_SET_ITEM) * n;
            if (base == st.len) {
                /* An empty tuple or frozenset: collapse needs a slot to write into. */
                Item it = {op == 0x74 ? TUPLE : FROZENSET, 1, 0, 0};
                if (items_push(&st, it) < 0) goto nomem;
                break;
            }
            if ((why = collapse(&st, base, op == 0x74 ? TUPLE : FROZENSET, max_depth)) != NULL)
                goto refused;
            break;
        }
        case 0x5D: case 0x7D: case 0x8F: { /* EMPTY_LIST, EMPTY_DICT, EMPTY_SET */
            Item it = {op == 0x5D ? LIST : op == 0x7D ? DICT : SET, 1, 0, 0};
            if (items_push(&st, it) < 0) goto nomem;
            break;
        }
        case 0x61: /* APPEND */
            if ((why = add_items(&st, &marks, st.len - 1, LIST, max_depth, &memo, &regrown))
                    != NULL)
                goto refused;
            break;
        case 0x73: /* SETITEM */
            if ((why = add_items(&st, &marks, st.len - 2, DICT, max_depth, &memo, &regrown))
                    != NULL)
                goto refused;
            break;
        case 0x65: case 0x75: case 0x90: { /* APPENDS, SETITEMS, ADDITEMS */
            if (!marks.len) FAIL("an opcode that needs MARK without one");
            Py_ssize_t base = marks.pos[--marks.len];
            int k = op == 0x65 ? LIST : op == 0x75 ? DICT : SET;
            if (k == DICT && (st.len - base) % 2) FAIL("SETITEMS with an odd number of items");
            int64_t n = st.len - base;
            if ((why = add_items(&st, &marks, base, k, max_depth, &memo, &regrown)) != NULL)
                goto refused;
            left -= k == LIST ? C_APPEND * n : k == DICT ? C_SETITEM * (n / 2) : C_SET_ITEM * n;
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            if (st.len < 2 || TOP_FENCE > st.len - 2)
                FAIL("STACK_GLOBAL without module and name");
            Item *m = &st.items[st.len - 2], *n = &st.items[st.len - 1];
            if (m->kind != STR || n->kind != STR
                    || m->str_len != (uint32_t)(sizeof(MODULE) - 1)
                    || memcmp(b + m->str_off, MODULE, sizeof(MODULE) - 1) != 0
                    || !is_builder_name(b + n->str_off, n->str_len)) {
                FAIL("a global other than pycos's builders");
            }
            st.len -= 2;
            Item it = {BUILDER, 0, 0, 0};
            st.items[st.len++] = it;
            break;
        }
        case 0x52: { /* REDUCE */
            if (st.len < 2 || TOP_FENCE > st.len - 2)
                FAIL("REDUCE without a callable and arguments");
            Item *f = &st.items[st.len - 2], *a = &st.items[st.len - 1];
            if (f->kind != BUILDER || a->kind != TUPLE)
                FAIL("REDUCE of something other than a pycos builder");
            int32_t depth = a->depth + 1;
            if (depth > max_depth) FAIL("nesting deeper than the limit");
            st.len -= 2;
            Item it = {OBJECT, depth, 0, 0};
            st.items[st.len++] = it;
            reduces++;
            break;
        }
        case 0x97: { /* NEXT_BUFFER */
            if (--buffers < 0) FAIL("an out-of-band buffer that was not supplied");
            Item it = {BUFFER, 0, 0, 0};
            if (items_push(&st, it) < 0) goto nomem;
            break;
        }
        case 0x98: /* READONLY_BUFFER */
            if (!st.len || st.items[st.len - 1].kind != BUFFER)
                FAIL("READONLY_BUFFER of something other than a buffer");
            break;
        default:
            FAIL("an opcode that is not allowed");
        }
    }
    if (left < 0) {
        FAIL(TOO_COSTLY);
    }
    at = last;
    if (marks.len || st.len != 1 || st.items[0].kind == BUILDER) {
        FAIL("the payload does not leave exactly one value");
    }
    if (regrown) {
        Py_ssize_t deep = deepest(b, last, max_depth);
        if (deep < 0) goto nomem;
        if (deep > max_depth) FAIL("nesting deeper than the limit (through the memo)");
    }
    *left_out = (Py_ssize_t)left;
    *reduces_out = reduces;
    result = 0;
    goto done;

refused:
    *why_out = why;
    *where = at;
    result = 1;
    goto done;
nomem:
    PyErr_NoMemory();
    result = -1;
done:
    if (st.items != st.small) PyMem_Free(st.items);
    if (memo.items != memo.small) PyMem_Free(memo.items);
    if (marks.pos != marks.small) PyMem_Free(marks.pos);
    return result;
}

static PyObject *
refusal_text(const char *why, Py_ssize_t at)
{
    return PyUnicode_FromFormat(
        "payload refused at byte %zd: %s (not pycos's wire format; a peer running pycos "
        "never sends this)", at, why);
}

static int
get_depth(PyObject *obj, int *out)
{
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < 1 || v > 1000000) {
        PyErr_SetString(PyExc_ValueError, "max_depth must be in 1..1000000");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The common part of check() and scan(): parse (data, max_depth, buffers) and run the
 * check. Returns NULL on an error (set), Py_None (borrowed) when the payload passes, else a
 * new reference to the refusal text; *left and *reduces say what the builders may spend. */
static PyObject *
checked_args(PyObject *const *args, Py_ssize_t nargs, const char *usage, Py_ssize_t *left,
             Py_ssize_t *reduces)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    int max_depth;
    if (get_depth(args[1], &max_depth) < 0) {
        return NULL;
    }
    Py_ssize_t buffers = PyLong_AsSsize_t(args[2]);
    if (buffers == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *why = NULL;
    Py_ssize_t at = 0;
    *left = 0;
    *reduces = 0;
    int rc = run_check((const unsigned char *)view.buf, view.len, max_depth, buffers, &why,
                       &at, left, reduces);
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    if (rc) {
        return refusal_text(why, at);
    }
    return Py_None;
}

/* check(data, max_depth, buffers) -> None | str */
static PyObject *
wirecheck_check(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t left, reduces;
    PyObject *result = checked_args(args, nargs,
                                    "check(data, max_depth, buffers) takes 3 arguments",
                                    &left, &reduces);
    if (result == Py_None) {
        Py_RETURN_NONE;
    }
    return result;
}

/* scan(data, max_depth, buffers) -> None | int | str: check(), and what is left of the
 * memory budget for the builders when the payload calls any (None: it calls none). */
static PyObject *
wirecheck_scan(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t left, reduces;
    PyObject *result = checked_args(args, nargs,
                                    "scan(data, max_depth, buffers) takes 3 arguments",
                                    &left, &reduces);
    if (result != Py_None) {
        return result;  /* an error (NULL) or the refusal */
    }
    if (!reduces) {
        Py_RETURN_NONE;
    }
    return PyLong_FromSsize_t(left);
}

/* ---- the builders' memory budget (see pycos.proto.wirecost: budget, charge, weigh) ----
 * Set once by wirecost: the context variable holding the current decode's budget (a list of
 * one int, or None), the error to raise when it is spent, and its message. */
static PyObject *g_budget_var, *g_budget_error, *g_budget_message;

static PyObject *
wirecheck_set_budget(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *var, *error, *message;
    if (!PyArg_ParseTuple(args, "O!OU:set_budget", &PyContextVar_Type, &var, &error, &message)) {
        return NULL;
    }
    Py_XSETREF(g_budget_var, Py_NewRef(var));
    Py_XSETREF(g_budget_error, Py_NewRef(error));
    Py_XSETREF(g_budget_message, Py_NewRef(message));
    Py_RETURN_NONE;
}

/* What a builder may allocate copying `v` (wirecost.weigh, one value). */
static int64_t
weigh_one(PyObject *v)
{
    if (PyUnicode_CheckExact(v)) {
        return 4 * (int64_t)PyUnicode_GET_LENGTH(v);
    }
    if (PyTuple_CheckExact(v)) {
        return 80 * (int64_t)PyTuple_GET_SIZE(v);
    }
    if (PyList_CheckExact(v)) {
        return 80 * (int64_t)PyList_GET_SIZE(v);
    }
    if (PyDict_CheckExact(v)) {
        return 80 * (int64_t)PyDict_GET_SIZE(v);
    }
    if (PyAnySet_CheckExact(v)) {
        return 80 * (int64_t)PySet_GET_SIZE(v);
    }
    if (PyBytes_CheckExact(v)) {
        return PyBytes_GET_SIZE(v);
    }
    if (PyByteArray_CheckExact(v)) {
        return PyByteArray_GET_SIZE(v);
    }
    if (PyMemoryView_Check(v) && Py_IS_TYPE(v, &PyMemoryView_Type)) {
        return PyMemoryView_GET_BUFFER(v)->len;
    }
    if (Py_IS_TYPE(v, &PyPickleBuffer_Type)) {
        const Py_buffer *view = PyPickleBuffer_GetBuffer(v);
        return view == NULL ? -1 : view->len;
    }
    return 0;
}

/* charge(n, fields=()) -> None: wirecost.charge. */
static PyObject *
wirecheck_charge(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2 || g_budget_var == NULL) {
        PyErr_SetString(PyExc_TypeError, "charge(n, fields=()) needs set_budget() first");
        return NULL;
    }
    PyObject *cell;
    if (PyContextVar_Get(g_budget_var, NULL, &cell) < 0) {
        return NULL;
    }
    if (cell == NULL || !PyList_CheckExact(cell) || PyList_GET_SIZE(cell) != 1) {
        Py_XDECREF(cell);
        Py_RETURN_NONE; /* no budget: not decoding a payload */
    }
    int64_t n = PyLong_AsLongLong(args[0]);
    if (n == -1 && PyErr_Occurred()) {
        Py_DECREF(cell);
        return NULL;
    }
    if (nargs == 2) {
        PyObject *fields = args[1];
        Py_ssize_t count;
        PyObject **items;
        if (PyTuple_CheckExact(fields)) {
            count = PyTuple_GET_SIZE(fields);
            items = &PyTuple_GET_ITEM(fields, 0);
        }
        else if (PyList_CheckExact(fields)) {
            count = PyList_GET_SIZE(fields);
            items = PyList_GET_SIZE(fields) ? &PyList_GET_ITEM(fields, 0) : NULL;
        }
        else {
            Py_DECREF(cell);
            PyErr_SetString(PyExc_TypeError, "charge: fields must be a tuple or a list");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            int64_t w = weigh_one(items[i]);
            if (w < 0) {
                Py_DECREF(cell);
                return NULL;
            }
            n += w;
        }
    }
    int64_t left = PyLong_AsLongLong(PyList_GET_ITEM(cell, 0));
    if (left == -1 && PyErr_Occurred()) {
        Py_DECREF(cell);
        return NULL;
    }
    left -= n;
    PyObject *value = PyLong_FromLongLong(left);
    if (value == NULL) {
        Py_DECREF(cell);
        return NULL;
    }
    PyObject *old = PyList_GET_ITEM(cell, 0);
    PyList_SET_ITEM(cell, 0, value); /* steals the new value */
    Py_DECREF(old);
    Py_DECREF(cell);
    if (left < 0) {
        PyErr_SetObject(g_budget_error, g_budget_message);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Set once by pycos.proto.codec: pickle.loads, pickle.dumps, WireError, SerializationError,
 * the general (Python) decode and encode for the cases the fast entries hand over, and the
 * bounded description of an exception. */
static PyObject *g_loads, *g_dumps, *g_wire_error, *g_ser_error, *g_protocol;
static PyObject *g_decode_general, *g_encode_general, *g_describe;

static PyObject *
wirecheck_configure(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *loads, *dumps, *wire_error, *ser_error, *dec, *enc, *describe;
    if (!PyArg_ParseTuple(args, "OOOOOOO:configure", &loads, &dumps, &wire_error, &ser_error,
                          &dec, &enc, &describe)) {
        return NULL;
    }
    Py_XSETREF(g_loads, Py_NewRef(loads));
    Py_XSETREF(g_dumps, Py_NewRef(dumps));
    Py_XSETREF(g_wire_error, Py_NewRef(wire_error));
    Py_XSETREF(g_ser_error, Py_NewRef(ser_error));
    Py_XSETREF(g_decode_general, Py_NewRef(dec));
    Py_XSETREF(g_encode_general, Py_NewRef(enc));
    Py_XSETREF(g_describe, Py_NewRef(describe));
    if (g_protocol == NULL) {
        g_protocol = PyLong_FromLong(5);
        if (g_protocol == NULL) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

#define DEFAULT_DEPTH 1000

/* loads(data, max_depth=1000) -> the value; WireError when refused; SerializationError
 * (chained) when unpickling failed for another reason. */
static PyObject *
wirecheck_loads(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2 || g_loads == NULL) {
        PyErr_SetString(PyExc_TypeError, "loads(data, max_depth=1000) needs configure() first");
        return NULL;
    }
    int max_depth = DEFAULT_DEPTH;
    if (nargs == 2 && get_depth(args[1], &max_depth) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *why = NULL;
    Py_ssize_t at = 0, left = 0, reduces = 0;
    int rc = run_check((const unsigned char *)view.buf, view.len, max_depth, 0, &why, &at,
                       &left, &reduces);
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    if (rc) {
        PyObject *text = refusal_text(why, at);
        if (text != NULL) {
            PyErr_SetObject(g_wire_error, text);
            Py_DECREF(text);
        }
        return NULL;
    }
    PyObject *value;
    if (reduces && g_budget_var != NULL) {
        /* Builders run: they charge what they build to what is left (wirecost.budget). */
        PyObject *cell = Py_BuildValue("[n]", left);
        if (cell == NULL) {
            return NULL;
        }
        PyObject *token = PyContextVar_Set(g_budget_var, cell);
        Py_DECREF(cell);
        if (token == NULL) {
            return NULL;
        }
        value = PyObject_CallOneArg(g_loads, args[0]);
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        int rc2 = PyContextVar_Reset(g_budget_var, token);
        Py_DECREF(token);
        if (rc2 < 0) {
            Py_XDECREF(type);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
            Py_XDECREF(value);
            return NULL;
        }
        PyErr_Restore(type, exc, tb);
    }
    else {
        value = PyObject_CallOneArg(g_loads, args[0]);
    }
    if (value == NULL && !PyErr_ExceptionMatches(g_ser_error)) {
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        /* Never str() of the exception itself: it may print a payload's value in full. */
        PyObject *brief = PyObject_CallOneArg(g_describe, exc ? exc : type);
        if (brief == NULL) {
            PyErr_Clear();
            brief = PyUnicode_FromString("an error");
        }
        PyObject *text = brief ? PyUnicode_FromFormat("cannot decode payload: %U", brief) : NULL;
        Py_XDECREF(brief);
        if (text != NULL) {
            PyErr_SetObject(g_ser_error, text);
            Py_DECREF(text);
            PyObject *t2, *e2, *tb2;
            PyErr_Fetch(&t2, &e2, &tb2);
            PyErr_NormalizeException(&t2, &e2, &tb2);
            if (e2 != NULL && exc != NULL) {
                PyException_SetCause(e2, Py_NewRef(exc));
            }
            PyErr_Restore(t2, e2, tb2);
        }
        Py_XDECREF(type);
        Py_XDECREF(exc);
        Py_XDECREF(tb);
    }
    return value;
}

/* dumps(obj, max_depth=1000) -> the plain pickle when it is already in the dialect, else
 * None (also None when plain pickling failed: the caller's canonical pickler explains). */
static PyObject *
wirecheck_dumps(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2 || g_dumps == NULL) {
        PyErr_SetString(PyExc_TypeError, "dumps(obj, max_depth=1000) needs configure() first");
        return NULL;
    }
    int max_depth = DEFAULT_DEPTH;
    if (nargs == 2 && get_depth(args[1], &max_depth) < 0) {
        return NULL;
    }
    PyObject *data = PyObject_CallFunctionObjArgs(g_dumps, args[0], g_protocol, NULL);
    if (data == NULL) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
            return NULL;
        }
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const char *why = NULL;
    Py_ssize_t at = 0, left = 0, reduces = 0;
    int rc = run_check((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                       max_depth, 0, &why, &at, &left, &reduces);
    if (rc < 0) {
        Py_DECREF(data);
        return NULL;
    }
    if (rc) {
        Py_DECREF(data);
        Py_RETURN_NONE;
    }
    return data;
}

/* decode(data, buffers=None, trusted=False, max_depth=1000): pycos.proto.codec.decode.
 * The common case (no buffers, not trusted, default depth) is loads(); the others go to the
 * general decoder in Python. */
static PyObject *
wirecheck_decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL && nargs == 1) {
        return wirecheck_loads(self, args, 1);
    }
    if (g_decode_general == NULL) {
        PyErr_SetString(PyExc_TypeError, "decode() needs configure() first");
        return NULL;
    }
    return PyObject_Vectorcall(g_decode_general, args, (size_t)nargs, kwnames);
}

/* encode(obj, buffer_callback=None, max_depth=1000): pycos.proto.codec.encode. */
static PyObject *
wirecheck_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (g_encode_general == NULL) {
        PyErr_SetString(PyExc_TypeError, "encode() needs configure() first");
        return NULL;
    }
    if (kwnames == NULL && nargs == 1) {
        PyObject *data = wirecheck_dumps(self, args, 1);
        if (data != Py_None) {
            return data; /* the payload, or NULL with an error */
        }
        Py_DECREF(data);
    }
    return PyObject_Vectorcall(g_encode_general, args, (size_t)nargs, kwnames);
}

static PyMethodDef methods[] = {
    {"decode", (PyCFunction)(void (*)(void))wirecheck_decode, METH_FASTCALL | METH_KEYWORDS,
     "decode(data, buffers=None, trusted=False, max_depth=1000): see pycos.proto.codec."},
    {"encode", (PyCFunction)(void (*)(void))wirecheck_encode, METH_FASTCALL | METH_KEYWORDS,
     "encode(obj, buffer_callback=None, max_depth=1000): see pycos.proto.codec."},
    {"check", (PyCFunction)(void (*)(void))wirecheck_check, METH_FASTCALL,
     "check(data, max_depth, buffers) -> None, or the reason the payload is refused."},
    {"scan", (PyCFunction)(void (*)(void))wirecheck_scan, METH_FASTCALL,
     "scan(data, max_depth, buffers) -> the reason the payload is refused (str), or what is "
     "left of its memory budget for the builders it calls (int; None: it calls none)."},
    {"configure", wirecheck_configure, METH_VARARGS,
     "configure(loads, dumps, WireError, SerializationError, decode, encode, describe): set "
     "once by pycos.proto.codec."},
    {"set_budget", wirecheck_set_budget, METH_VARARGS,
     "set_budget(contextvar, error, message): set once by pycos.proto.wirecost."},
    {"charge", (PyCFunction)(void (*)(void))wirecheck_charge, METH_FASTCALL,
     "charge(n, fields=()): charge n bytes and what copying fields may take to the current "
     "decode's budget (pycos.proto.wirecost.charge)."},
    {"loads", (PyCFunction)(void (*)(void))wirecheck_loads, METH_FASTCALL,
     "loads(data, max_depth): check the payload, then unpickle it."},
    {"dumps", (PyCFunction)(void (*)(void))wirecheck_dumps, METH_FASTCALL,
     "dumps(obj, max_depth): the plain pickle if it is in the dialect, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wirecheck",
    "Compiled checker of pycos's wire dialect (see pycos.proto.wirecheck).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__wirecheck(void)
{
    PyObject *m = PyModule_Create(&module);
    /* The interface's version: pycos.proto ignores a build of another one (a stale build). */
    if (m != NULL && PyModule_AddIntConstant(m, "API", 2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
