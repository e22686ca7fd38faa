#!/usr/bin/env python3
"""Record per-column units in sedflow model files trained before the simulator
wrote them (2026-12-01): sets the /names attributes theta_units and x_units
(comma-separated, one entry per column, as sedflow train copies them from a
simulation file) to the SED model's units.  Only these two attributes change;
weights, statistics and history are untouched (the model hash in posterior
catalogs covers weights and z-score statistics only).

    python3 scripts/model_units.py models/sedflow_default.h5 models/sedflow_fast.h5
"""
import sys

import h5py

# The same strings as src/sim/simfile.c writes for theta_u and x.
THETA_UNITS = "log10 Msun,-,-,-,-,Gyr,dex,dex,-,-,-"
X_UNITS = "AB mag,AB mag,AB mag,AB mag,AB mag,mag,mag,mag,mag,mag,-"
THETA_NAMES = "logmstar,u1,u2,u3,fburst,tburst,log10_gamma1,log10_gamma2,tau_bc,tau_ism,n_dust"


def set_string(obj, name, value):
    """Fixed-length, null-terminated ASCII, as sedflow's own writer."""
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(value) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    if name in obj.attrs:
        del obj.attrs[name]
    obj.attrs.create(name, value.encode("ascii"), dtype=h5py.Datatype(tid))


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in paths:
        with h5py.File(path, "r+") as f:
            names = f["names"].attrs["theta_names"]
            names = names.decode() if isinstance(names, bytes) else str(names)
            if names != THETA_NAMES:
                print(f"{path}: theta_names '{names}' are not the SED model's; left unchanged", file=sys.stderr)
                return 1
            set_string(f["names"], "theta_units", THETA_UNITS)
            set_string(f["names"], "x_units", X_UNITS)
        print(f"{path}: theta_units and x_units set")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
