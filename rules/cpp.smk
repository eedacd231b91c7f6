# The C++ inference program as an artifact: rebuilt when anything under cpp/ changes.

CPP_SOURCES = sorted(
    repo_path(p.relative_to(REPO))
    for p in (REPO / "cpp").rglob("*")
    if p.is_file()
    and (
        p.suffix in {".cpp", ".cc", ".h", ".hpp", ".cmake"}
        or p.name == "CMakeLists.txt"
    )
    and not {"build", "fuzz", "tests"} & set(p.relative_to(REPO / "cpp").parts)
)


rule compile_cpp:
    """Compile the C++ inference program (cpp/, CMake) against the TensorRT found in its environment."""
    input:
        image=container_input("tensorrt"),
        script=script("compile_cpp.py"),
        code=code_of("compile_cpp.py"),
        cmakelists=repo_path("cpp", "CMakeLists.txt"),
        sources=CPP_SOURCES,
    output:
        binary="results/bin/trt_infer",
    log:
        "results/logs/compile_cpp/trt_infer.log",
    benchmark:
        "results/benchmarks/compile_cpp/trt_infer.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        TRT_IMAGE
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        source=cmake_source,
        cmake_args=config["cpp"]["cmake_args"],
    shell:
        "python {input.script:q} --source {params.source:q} --cmake-args={params.cmake_args:q}"
        " --jobs {threads:q} --output {output.binary:q} > {log:q} 2>&1"
