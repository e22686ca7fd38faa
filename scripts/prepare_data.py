#!/usr/bin/env python3
"""Convert the upstream PROVABGS emulator pickles, NMF bases and SDSS filter
curves into sedflow's model-data HDF5 file (layout documented in docs/DATA.md).

Run by scripts/prepare_data.sh; needs Debian's python3-numpy and python3-h5py.
Nothing at run time needs Python.
"""
import argparse
import os
import pickle

import h5py
import numpy as np

FORMAT_VERSION = 1
NMF_FILES = ["nmf.v0.1.seed0_99.w2000_3600.pca50.8x256.nbatch250.pkl",
             "nmf.v0.1.seed0_99.w3600_5500.pca50.8x256.nbatch250.pkl",
             "nmf.v0.1.seed0_99.w5500_7410.pca50.8x256.nbatch250.pkl",
             "nmf.v0.1.seed0_99.w7410_60000.pca30.8x256.nbatch250.pkl"]
BURST_FILES = ["fsps.burst.seed0_199.w%d.pca%d.8x256.nbatch250.pkl" % (i, n)
               for i, n in enumerate([30, 50, 50, 30])]
BANDS = "ugriz"


def write_emulator(grp, pkl_path):
    e = pickle.load(open(pkl_path, "rb"))
    if not (isinstance(e, list) and len(e) == 18):
        raise ValueError("%s: expected a list of 18 entries" % pkl_path)
    W, b, alphas, betas = e[0], e[1], e[2], e[3]
    n_layers = len(W)
    grp.attrs["n_layers"] = n_layers          # dense layers (hidden + output)
    grp.attrs["n_param"] = int(e[11])
    grp.attrs["n_wave"] = int(e[12])
    grp.attrs["n_pca"] = int(e[14])
    grp.attrs["source"] = os.path.basename(pkl_path)
    for l in range(n_layers):
        # W[l] is (n_in, n_out): h_{l+1} = h_l @ W[l] + b[l]
        grp.create_dataset("W%d" % l, data=np.asarray(W[l], dtype=np.float32))
        grp.create_dataset("b%d" % l, data=np.asarray(b[l], dtype=np.float32))
    for l in range(n_layers - 1):
        grp.create_dataset("alpha%d" % l, data=np.asarray(alphas[l], dtype=np.float32))
        grp.create_dataset("beta%d" % l, data=np.asarray(betas[l], dtype=np.float32))
    names = ["param_shift", "param_scale", "pca_shift", "pca_scale",
             "spectrum_shift", "spectrum_scale", "pca_basis"]
    for k, name in enumerate(names):
        grp.create_dataset(name, data=np.asarray(e[4 + k], dtype=np.float32))
    grp.create_dataset("wave_rest_A", data=np.asarray(e[13], dtype=np.float64))


def read_ecsv(path):
    rows = []
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        if parts[0] == "wavelength":
            continue
        rows.append([float(parts[0]), float(parts[1])])
    return np.array(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--upstream", required=True, help="upstream data folder")
    ap.add_argument("--out", required=True, help="output HDF5 file")
    a = ap.parse_args()
    pv = os.path.join(a.upstream, "provabgs")
    tmp = a.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["description"] = ("sedflow model data: PROVABGS emulators (NMF and burst), "
                                  "NMF SFH/ZH bases, SDSS filter curves")
        for kind, files in (("nmf", NMF_FILES), ("burst", BURST_FILES)):
            g = f.create_group("emulator/" + kind)
            g.attrs["n_segments"] = len(files)
            for s, fn in enumerate(files):
                write_emulator(g.create_group("seg%d" % s), os.path.join(pv, fn))
        # NMF bases: files are 50 lookback times descending; reverse so t ascends.
        t = np.loadtxt(os.path.join(pv, "sfh_t_int.txt"))[::-1]
        sfh = np.loadtxt(os.path.join(pv, "NMF_2basis_SFH_components_nowgt_lin_Nc4.txt"))[:, ::-1]
        zh = np.loadtxt(os.path.join(pv, "NMF_2basis_Z_components_nowgt_lin_Nc2.txt"))[:, ::-1]
        sfh = sfh[[2, 0, 1, 3], :]  # the SFH rows are stored out of order (MODEL.md s5)
        g = f.create_group("nmf_basis")
        g.create_dataset("t_lookback_gyr", data=np.ascontiguousarray(t))
        g.create_dataset("sfh", data=np.ascontiguousarray(sfh))
        g.create_dataset("zh", data=np.ascontiguousarray(zh))
        for band in BANDS:
            r = read_ecsv(os.path.join(a.upstream, "filters", "sdss2010-%s.ecsv" % band))
            g = f.create_group("filters/" + band)
            g.create_dataset("wavelength_A", data=r[:, 0])
            g.create_dataset("response", data=r[:, 1])
            g.attrs["description"] = "SDSS 2010 (Doi et al.) photon-counting response, airmass 1.3"
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
