/* arseg_cli.video.hevc._hevcparse: the CPython face of the HEVC bitstream motion parser.
 *
 * Parser().parse(data, nal_length_size) -> list of (poc, decode_index, slice_types, width, height,
 *     (crop_left, crop_right, crop_top, crop_bottom), bit_depth, pu_records_bytes), one per picture.
 * Parser().parse_syntax(data, nal_length_size) -> list of dicts with the syntax records (for tests).
 * Errors raise StreamError (corrupt data) or Unsupported (a feature the parser refuses). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "hevc_motion.h"
#include "hevc_parse.h"
#include "hevc_parser.h"

static PyObject *StreamError, *Unsupported;

typedef struct {
    PyObject_HEAD
    HevcParser *parser;
    HevcMotionState *motion;
    long decode_index;
    HevcPuMotion *out;
    size_t cap_out;
} ParserObject;

typedef struct {
    ParserObject *self;
    PyObject *list;
    int syntax_only;
} CallbackContext;

static PyObject *slice_types(const HevcPictureSyntax *pic) {
    char types[256];
    int n = pic->n_slices < 255 ? pic->n_slices : 255;
    for (int i = 0; i < n; i++)
        types[i] = "BPI"[pic->slices[i].slice_type];
    return PyUnicode_FromStringAndSize(types, n);
}

/* The coding tools a picture's parameter sets enable (tests check that a clip exercises them). */
static PyObject *coding_tools(const HevcSps *sps, const HevcPps *pps) {
    return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "amp", sps->amp_enabled,
                         "sao", sps->sao_enabled, "pcm", sps->pcm_enabled, "scaling_list",
                         sps->scaling_list_enabled, "cu_qp_delta", pps->cu_qp_delta_enabled, "sign_hiding",
                         pps->sign_data_hiding, "transform_skip", pps->transform_skip_enabled,
                         "transquant_bypass", pps->transquant_bypass_enabled, "weighted_pred",
                         pps->weighted_pred, "weighted_bipred", pps->weighted_bipred, "tiles",
                         pps->num_tile_cols * pps->num_tile_rows, "wpp", pps->entropy_coding_sync_enabled,
                         "dependent_slices", pps->dependent_slice_segments_enabled, "cabac_init_present",
                         pps->cabac_init_present);
}

static PyObject *syntax_record(const HevcPictureSyntax *pic) {
    const HevcSps *sps = pic->sps;
    PyObject *slices = PyList_New(pic->n_slices);
    if (!slices)
        return NULL;
    for (int i = 0; i < pic->n_slices; i++) {
        const HevcSliceHeader *sh = &pic->slices[i];
        PyObject *t = Py_BuildValue("{s:i,s:i,s:i,s:i,s:i,s:i}", "type", sh->slice_type, "address",
                                    sh->slice_segment_address, "dependent", sh->dependent_slice_segment,
                                    "entry_points", sh->num_entry_points, "qp", sh->slice_qp, "nal_type",
                                    sh->nal_unit_type);
        if (!t) {
            Py_DECREF(slices);
            return NULL;
        }
        PyList_SET_ITEM(slices, i, t);
    }
    return Py_BuildValue(
        "{s:N,s:y#,s:y#,s:y#,s:i,s:i,s:i,s:i,s:i,s:i,s:N}", "slices", slices, "cus",
        pic->cus ? (const char *)pic->cus : "", (Py_ssize_t)pic->n_cus * (Py_ssize_t)sizeof(HevcCuSyntax),
        "pus", pic->pus ? (const char *)pic->pus : "", (Py_ssize_t)pic->n_pus * (Py_ssize_t)sizeof(HevcPuSyntax),
        "ctb_slice_idx", (const char *)pic->ctb_slice_idx,
        (Py_ssize_t)sps->ctb_w * sps->ctb_h * (Py_ssize_t)sizeof(int32_t), "width", sps->width, "height",
        sps->height, "log2_ctb", sps->log2_ctb, "log2_min_cb", sps->log2_min_cb, "bit_depth", sps->bit_depth_luma,
        "pcm_cus", pic->n_pcm_cus, "tools", coding_tools(sps, pic->pps));
}

static int on_picture(void *opaque, HevcPictureSyntax *pic, char *err, size_t err_len) {
    CallbackContext *cc = opaque;
    ParserObject *self = cc->self;
    PyObject *item;
    if (cc->syntax_only) {
        item = syntax_record(pic);
    } else {
        if (hevc_motion_rasl_skipped(self->motion, pic))
            return 0;
        size_t need = (size_t)pic->n_pus + (size_t)pic->n_cus;
        if (need > self->cap_out) {
            HevcPuMotion *grown = realloc(self->out, need * sizeof(HevcPuMotion));
            if (!grown)
                return hevc_fail(err, err_len, HEVC_ERR_STREAM, "out of memory");
            self->out = grown;
            self->cap_out = need;
        }
        int n_out = 0, poc = 0;
        if (hevc_motion_picture(self->motion, pic, self->out, &n_out, &poc, err, err_len) < 0)
            return HEVC_ERR_STREAM;
        const HevcSps *sps = pic->sps;
        item = Py_BuildValue("(ilNii(iiii)iy#)", poc, self->decode_index, slice_types(pic), sps->width,
                             sps->height, sps->conf_left, sps->conf_right, sps->conf_top, sps->conf_bottom,
                             sps->bit_depth_luma, self->out ? (const char *)self->out : "",
                             (Py_ssize_t)n_out * (Py_ssize_t)sizeof(HevcPuMotion));
        self->decode_index++;
    }
    if (!item || PyList_Append(cc->list, item) < 0) {
        Py_XDECREF(item);
        return hevc_fail(err, err_len, -3, "python error");
    }
    Py_DECREF(item);
    return 0;
}

static PyObject *run(ParserObject *self, PyObject *args, int syntax_only) {
    Py_buffer data;
    int nal_length_size;
    if (!PyArg_ParseTuple(args, "y*i", &data, &nal_length_size))
        return NULL;
    if (nal_length_size < 0 || nal_length_size > 4) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "nal_length_size must be 0 (Annex B) or 1-4");
        return NULL;
    }
    CallbackContext cc = {self, PyList_New(0), syntax_only};
    if (!cc.list) {
        PyBuffer_Release(&data);
        return NULL;
    }
    char err[256] = "";
    int rc = hevc_parser_parse(self->parser, data.buf, (size_t)data.len, nal_length_size, on_picture, &cc, err,
                               sizeof(err));
    PyBuffer_Release(&data);
    if (rc == HEVC_OK)
        return cc.list;
    Py_DECREF(cc.list);
    if (rc == -3)
        return NULL;
    PyErr_SetString(rc == HEVC_ERR_UNSUPPORTED ? Unsupported : StreamError, err[0] ? err : "corrupt HEVC data");
    return NULL;
}

static PyObject *parser_parse(ParserObject *self, PyObject *args) { return run(self, args, 0); }

static PyObject *parser_parse_syntax(ParserObject *self, PyObject *args) { return run(self, args, 1); }

static int parser_init(ParserObject *self, PyObject *args, PyObject *kwargs) {
    if (!PyArg_ParseTuple(args, "") || (kwargs && PyDict_Size(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Parser() takes no arguments");
        return -1;
    }
    hevc_parser_free(self->parser);
    if (self->motion)
        hevc_motion_free(self->motion);
    self->parser = hevc_parser_new();
    self->motion = hevc_motion_new();
    self->decode_index = 0;
    if (!self->parser || !self->motion) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void parser_dealloc(ParserObject *self) {
    hevc_parser_free(self->parser);
    if (self->motion)
        hevc_motion_free(self->motion);
    free(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef parser_methods[] = {
    {"parse", (PyCFunction)parser_parse, METH_VARARGS,
     "parse(data, nal_length_size) -> [(poc, decode_index, slice_types, width, height, crop, bit_depth, "
     "pus)] for each picture completed by data"},
    {"parse_syntax", (PyCFunction)parser_parse_syntax, METH_VARARGS,
     "parse_syntax(data, nal_length_size) -> [dict] of the syntax records of each picture (tests)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ParserType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "arseg_cli.video.hevc._hevcparse.Parser",
    .tp_basicsize = sizeof(ParserObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "HEVC bitstream motion parser (one per stream).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)parser_init,
    .tp_dealloc = (destructor)parser_dealloc,
    .tp_methods = parser_methods,
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_hevcparse", "HEVC bitstream motion vectors (native).", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hevcparse(void) {
    if (PyType_Ready(&ParserType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    StreamError = PyErr_NewException("arseg_cli.video.hevc._hevcparse.StreamError", PyExc_ValueError, NULL);
    Unsupported = PyErr_NewException("arseg_cli.video.hevc._hevcparse.Unsupported", PyExc_ValueError, NULL);
    Py_INCREF(&ParserType);
    if (!StreamError || !Unsupported || PyModule_AddObject(m, "Parser", (PyObject *)&ParserType) < 0 ||
        PyModule_AddObject(m, "StreamError", StreamError) < 0 ||
        PyModule_AddObject(m, "Unsupported", Unsupported) < 0 ||
        PyModule_AddIntConstant(m, "PU_RECORD_SIZE", (long)sizeof(HevcPuMotion)) < 0 ||
        PyModule_AddIntConstant(m, "CU_RECORD_SIZE", (long)sizeof(HevcCuSyntax)) < 0 ||
        PyModule_AddIntConstant(m, "PU_SYNTAX_RECORD_SIZE", (long)sizeof(HevcPuSyntax)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
