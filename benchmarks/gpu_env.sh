# Sourced by the lent-GPU scripts (gpu_train.sh, gpu_run.sh) before they run Python there: the GPU
# image has no zstandard, so the wheels carried in .whl/ are installed into /tmp/vtok-site (only if
# it is missing), and the checkout goes on PYTHONPATH, so vtok runs uninstalled. Sets PY (PYTHON or
# python3). Installs nothing where the packages are already there, as on a developer's machine.
PY=${PYTHON:-python3}
if ! "$PY" -c "import zstandard" 2> /dev/null && compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/vtok-site .whl/*.whl
    export PYTHONPATH=/tmp/vtok-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
