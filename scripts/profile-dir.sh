# Sourced by the benchmark scripts: the folder under the cargo target directory that a cargo
# profile builds into (`dev` and `test` build into debug/, `release` and `bench` into
# release/, any other profile into its own name).
profile_dir() {
    case $1 in
        dev | test) echo debug ;;
        release | bench) echo release ;;
        *) echo "$1" ;;
    esac
}
