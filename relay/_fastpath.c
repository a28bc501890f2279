/* The relay's inner loops, compiled: a run of a frame's RTP packets written, protected and laid
 * out back to back in the send buffer, in one call (per viewer); a frame split into NAL units
 * and a NAL unit into fragmentation units (per stream).
 *
 * relay/engine.py and relay/packets.py do the same in Python when this module is not built (no
 * C compiler where the package was installed): see relay/fastpath.py. libsrtp is not linked here: the caller
 * passes the address of pylibsrtp's own srtp_protect and of the session's context, so the
 * packets are protected by exactly the library and keys aiortc negotiated.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* libsrtp 2: srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) */
typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

#define SRTP_TRAILER_ROOM (16 + 128) /* the largest tag plus the largest MKI */

/* protect_batch(buffer, payloads, start, end, last, header, seq, protect, context)
 *     -> (bytes written, size of the first datagram)
 *
 * For each payload in payloads[start:end]: the RTP header ``header`` (fixed header and
 * extension block, as the frame's packets share it) with sequence number seq, seq + 1, ...
 * and the marker bit on index ``last``, then the payload, protected in place by libsrtp; each
 * protected packet directly after the previous one from the start of ``buffer``. */
static PyObject *
protect_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "protect_batch takes 9 arguments");
        return NULL;
    }
    PyObject *payloads = args[1];
    PyObject *header = args[5];
    if (!PyTuple_Check(payloads) || !PyBytes_Check(header)) {
        PyErr_SetString(PyExc_TypeError, "protect_batch: payloads must be a tuple, header bytes");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    Py_ssize_t end = PyLong_AsSsize_t(args[3]);
    Py_ssize_t last = PyLong_AsSsize_t(args[4]);
    unsigned long seq = PyLong_AsUnsignedLong(args[6]);
    void *protect_address = PyLong_AsVoidPtr(args[7]);
    void *context = PyLong_AsVoidPtr(args[8]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (start < 0 || end > PyTuple_GET_SIZE(payloads) || start >= end) {
        PyErr_SetString(PyExc_IndexError, "protect_batch: batch outside the frame's payloads");
        return NULL;
    }
    if (protect_address == NULL || context == NULL) {
        PyErr_SetString(PyExc_ValueError, "protect_batch: no libsrtp function or context");
        return NULL;
    }
    srtp_protect_fn protect = (srtp_protect_fn)protect_address;
    const char *head = PyBytes_AS_STRING(header);
    Py_ssize_t head_length = PyBytes_GET_SIZE(header);
    if (head_length < 12) {
        PyErr_SetString(PyExc_ValueError, "protect_batch: an RTP header has at least 12 bytes");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    unsigned char *buffer = (unsigned char *)view.buf;
    Py_ssize_t capacity = view.len;
    Py_ssize_t offset = 0;
    Py_ssize_t segment = 0;
    for (Py_ssize_t index = start; index < end; index++) {
        PyObject *payload = PyTuple_GET_ITEM(payloads, index);
        if (!PyBytes_Check(payload)) {
            PyErr_SetString(PyExc_TypeError, "protect_batch: a payload is not bytes");
            goto fail;
        }
        Py_ssize_t payload_length = PyBytes_GET_SIZE(payload);
        Py_ssize_t length = head_length + payload_length;
        if (offset + length + SRTP_TRAILER_ROOM > capacity || length > INT32_MAX / 2) {
            PyErr_SetString(PyExc_ValueError, "protect_batch: the batch does not fit the buffer");
            goto fail;
        }
        unsigned char *packet = buffer + offset;
        memcpy(packet, head, (size_t)head_length);
        packet[1] = (unsigned char)((packet[1] & 0x7F) | (index == last ? 0x80 : 0));
        packet[2] = (unsigned char)((seq >> 8) & 0xFF);
        packet[3] = (unsigned char)(seq & 0xFF);
        memcpy(packet + head_length, PyBytes_AS_STRING(payload), (size_t)payload_length);
        int protected_length = (int)length;
        int status = protect(context, packet, &protected_length);
        if (status != 0) {
            PyErr_Format(PyExc_ConnectionError,
                         "SRTP protection failed (libsrtp status %d)", status);
            goto fail;
        }
        if (index == start) {
            segment = protected_length;
        }
        offset += protected_length;
        seq = (seq + 1) & 0xFFFF;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nn)", offset, segment);
fail:
    PyBuffer_Release(&view);
    return NULL;
}

/* split_annexb(data) -> list of the NAL units of Annex-B data (rtcc.bitstream.split_annexb):
 * each unit runs from after a 00 00 01 start code to the next one, zero bytes before that
 * one excluded (they are the 4-byte start code's or trailing_zero_8bits); bytes before the
 * first start code and empty units are left out. */
static PyObject *
split_annexb(PyObject *self, PyObject *data)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *bytes = (const unsigned char *)view.buf;
    Py_ssize_t length = view.len;
    PyObject *units = PyList_New(0);
    if (units == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t start = -1; /* start of the unit being scanned, -1 before the first code */
    Py_ssize_t position = 2;
    for (;;) {
        /* the next start code: a 01 byte preceded by two zero bytes */
        Py_ssize_t code = -1;
        while (position < length) {
            const unsigned char *one = memchr(bytes + position, 1, (size_t)(length - position));
            if (one == NULL) {
                break;
            }
            Py_ssize_t at = one - bytes;
            if (bytes[at - 1] == 0 && bytes[at - 2] == 0) {
                code = at - 2;
                position = at + 1;
                break;
            }
            position = at + 1;
        }
        if (start >= 0) {
            Py_ssize_t end = code >= 0 ? code : length;
            while (end > start && bytes[end - 1] == 0) {
                end--;
            }
            if (end > start) {
                PyObject *unit = PyBytes_FromStringAndSize((const char *)bytes + start,
                                                           end - start);
                if (unit == NULL || PyList_Append(units, unit) < 0) {
                    Py_XDECREF(unit);
                    Py_DECREF(units);
                    PyBuffer_Release(&view);
                    return NULL;
                }
                Py_DECREF(unit);
            }
        }
        if (code < 0) {
            PyBuffer_Release(&view);
            return units;
        }
        start = code + 3;
        if (position < start + 2) {
            position = start + 2; /* a following code needs two bytes before its 01 */
        }
    }
}

/* fragment(nal, max_payload, prefix, kind, nal_header) -> list of fragments of one NAL unit
 * (relay.packets._fragment): all of one size but the last, each ``prefix``, an FU header
 * (start and end bits, ``kind``) and the unit's bytes after its ``nal_header`` bytes. */
static PyObject *
fragment(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "fragment(nal: bytes, max_payload, prefix: bytes, kind, nal_header)");
        return NULL;
    }
    const char *nal = PyBytes_AS_STRING(args[0]);
    Py_ssize_t nal_length = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t max_payload = PyLong_AsSsize_t(args[1]);
    const char *prefix = PyBytes_AS_STRING(args[2]);
    Py_ssize_t prefix_length = PyBytes_GET_SIZE(args[2]);
    long kind = PyLong_AsLong(args[3]);
    Py_ssize_t nal_header = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t room = max_payload - prefix_length - 1;
    Py_ssize_t length = nal_length - nal_header;
    if (room < 1 || length < 1 || nal_header < 0 || kind < 0 || kind > 0x3F) {
        PyErr_SetString(PyExc_ValueError, "fragment: nothing to fragment or no room for it");
        return NULL;
    }
    Py_ssize_t count = (length + room - 1) / room;
    Py_ssize_t size = (length + count - 1) / count;
    PyObject *fragments = PyList_New(count);
    if (fragments == NULL) {
        return NULL;
    }
    Py_ssize_t position = nal_header;
    for (Py_ssize_t index = 0; index < count; index++) {
        Py_ssize_t piece = index == count - 1 ? nal_length - position : size;
        PyObject *out = PyBytes_FromStringAndSize(NULL, prefix_length + 1 + piece);
        if (out == NULL) {
            Py_DECREF(fragments);
            return NULL;
        }
        char *bytes = PyBytes_AS_STRING(out);
        memcpy(bytes, prefix, (size_t)prefix_length);
        bytes[prefix_length] = (char)((index == 0 ? 0x80 : 0) | (index == count - 1 ? 0x40 : 0)
                                      | kind);
        memcpy(bytes + prefix_length + 1, nal + position, (size_t)piece);
        position += piece;
        PyList_SET_ITEM(fragments, index, out);
    }
    return fragments;
}

static PyMethodDef methods[] = {
    {"protect_batch", (PyCFunction)(void (*)(void))protect_batch, METH_FASTCALL,
     "Write, protect and lay out a run of a frame's RTP packets; (bytes, first datagram size)."},
    {"split_annexb", split_annexb, METH_O, "The NAL units of Annex-B data."},
    {"fragment", (PyCFunction)(void (*)(void))fragment, METH_FASTCALL,
     "The fragmentation units of one NAL unit."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "relay._fastpath",
    "The relay's per-frame and per-viewer loops, compiled (see relay/fastpath.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    return PyModule_Create(&module);
}
