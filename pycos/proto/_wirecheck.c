/* The checker of the wire's pickle dialect, compiled (pycos.proto._wirecheck).
 *
 * Owns check(data, max_depth, buffers) -> None | str: the same rules as the reference
 * implementation pycos/proto/wirecheck.py (read its docstring for what the dialect accepts and
 * why), returning None when the payload is accepted and the reason as a str when it is not.
 * It only reads the buffer it is given; every index is checked against the payload's length
 * before use, and every table it grows is bounded by that length. Uses only the Python C API.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <stdint.h>

enum { ATOM, STR, BYTES, TUPLE, LIST, DICT, SET, FROZENSET, BUILDER, OBJECT, BUFFER };

typedef struct {
    int32_t kind;
    int32_t depth;
    uint32_t str_off; /* for STR: offset of its bytes in the payload */
    uint32_t str_len;
} Item;

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

/* Put items [base, len) into the container at base - 1, which must be of kind `kind`. */
static const char *
add_items(Items *st, Marks *marks, Py_ssize_t base, int kind, int max_depth)
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

/* Check the payload b[0:end]. Returns 0 when accepted; 1 when refused (*why and *where set);
 * -1 with a Python exception set when memory ran out. */
static int
run_check(const unsigned char *b, Py_ssize_t end, int max_depth, Py_ssize_t buffers,
          const char **why_out, Py_ssize_t *where)
{
    Items st, memo;
    Marks marks;
    st.items = st.small; st.len = 0; st.cap = SMALL;
    memo.items = memo.small; memo.len = 0; memo.cap = SMALL;
    marks.pos = marks.small; marks.len = 0; marks.cap = SMALL;
    const char *why = NULL;
    Py_ssize_t at = 0;
    int result = 0;

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
    while (pos < last) {
        unsigned char op = b[pos];
        at = pos;
        pos++;
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
            if (items_push(&st, it) < 0) goto nomem;
            continue;
        }
        switch (op) {
        case 0x94: /* MEMOIZE */
            if (st.len <= TOP_FENCE) FAIL("MEMOIZE with nothing to store");
            if (items_push(&memo, st.items[st.len - 1]) < 0) goto nomem;
            break;
        case 0x68: case 0x6A: { /* BINGET, LONG_BINGET */
            int n = op == 0x68 ? 1 : 4;
            if (pos + n > last) FAIL("truncated memo index");
            uint64_t index = read_le(b + pos, n);
            pos += n;
            if (index >= (uint64_t)memo.len) FAIL("a memo index that was never stored");
            if (items_push(&st, memo.items[index]) < 0) goto nomem;
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
            if ((why = add_items(&st, &marks, st.len - 1, LIST, max_depth)) != NULL)
                goto refused;
            break;
        case 0x73: /* SETITEM */
            if ((why = add_items(&st, &marks, st.len - 2, DICT, max_depth)) != NULL)
                goto refused;
            break;
        case 0x65: case 0x75: case 0x90: { /* APPENDS, SETITEMS, ADDITEMS */
            if (!marks.len) FAIL("an opcode that needs MARK without one");
            Py_ssize_t base = marks.pos[--marks.len];
            int k = op == 0x65 ? LIST : op == 0x75 ? DICT : SET;
            if (k == DICT && (st.len - base) % 2) FAIL("SETITEMS with an odd number of items");
            if ((why = add_items(&st, &marks, base, k, max_depth)) != NULL) goto refused;
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
    at = last;
    if (marks.len || st.len != 1 || st.items[0].kind == BUILDER) {
        FAIL("the payload does not leave exactly one value");
    }
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

/* check(data, max_depth, buffers) -> None | str */
static PyObject *
wirecheck_check(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "check(data, max_depth, buffers) takes 3 arguments");
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
    int rc = run_check((const unsigned char *)view.buf, view.len, max_depth, buffers, &why,
                       &at);
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    if (rc) {
        return refusal_text(why, at);
    }
    Py_RETURN_NONE;
}

/* Set once by pycos.proto.codec: pickle.loads, pickle.dumps, WireError, SerializationError,
 * and the general (Python) decode and encode for the cases the fast entries hand over. */
static PyObject *g_loads, *g_dumps, *g_wire_error, *g_ser_error, *g_protocol;
static PyObject *g_decode_general, *g_encode_general;

static PyObject *
wirecheck_configure(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *loads, *dumps, *wire_error, *ser_error, *dec, *enc;
    if (!PyArg_ParseTuple(args, "OOOOOO:configure", &loads, &dumps, &wire_error, &ser_error,
                          &dec, &enc)) {
        return NULL;
    }
    Py_XSETREF(g_loads, Py_NewRef(loads));
    Py_XSETREF(g_dumps, Py_NewRef(dumps));
    Py_XSETREF(g_wire_error, Py_NewRef(wire_error));
    Py_XSETREF(g_ser_error, Py_NewRef(ser_error));
    Py_XSETREF(g_decode_general, Py_NewRef(dec));
    Py_XSETREF(g_encode_general, Py_NewRef(enc));
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
    Py_ssize_t at = 0;
    int rc = run_check((const unsigned char *)view.buf, view.len, max_depth, 0, &why, &at);
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
    PyObject *value = PyObject_CallOneArg(g_loads, args[0]);
    if (value == NULL && !PyErr_ExceptionMatches(g_ser_error)) {
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        PyObject *text = PyUnicode_FromFormat("cannot decode payload: %S", exc ? exc : type);
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
    Py_ssize_t at = 0;
    int rc = run_check((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                       max_depth, 0, &why, &at);
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
    {"configure", wirecheck_configure, METH_VARARGS,
     "configure(loads, dumps, WireError, SerializationError): set once by pycos.proto.codec."},
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
    return PyModule_Create(&module);
}
