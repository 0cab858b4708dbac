# bash completion for vmchan
# Candidates come from 'vmchan complete --shell bash', already quoted for the word being completed.
# Nothing here evaluates a candidate or the command line, and no candidate is word-split or glob-expanded.

__vmchan_complete() {
    local -a __vmchan_complete_lines=()
    local __vmchan_complete_word=${2-${COMP_WORDS[COMP_CWORD]-}}
    if [[ -n ${COMP_LINE+set} && -n ${COMP_POINT+set} ]]; then
        mapfile -t __vmchan_complete_lines < <(command vmchan complete --shell bash --word "$__vmchan_complete_word" --line "${COMP_LINE:0:COMP_POINT}" 2>/dev/null)
    else
        mapfile -t __vmchan_complete_lines < <(command vmchan complete --shell bash --word "$__vmchan_complete_word" -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    fi
    COMPREPLY=()
    local __vmchan_complete_n=${#__vmchan_complete_lines[@]}
    [[ $__vmchan_complete_n -gt 0 && ${__vmchan_complete_lines[__vmchan_complete_n-1]} == :* ]] || return 0
    COMPREPLY=("${__vmchan_complete_lines[@]:0:__vmchan_complete_n-1}")
    return 0
}

complete -F __vmchan_complete vmchan
