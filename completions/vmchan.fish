# fish completion for vmchan
# Candidates come from 'vmchan complete'; fish escapes what it inserts. Nothing here evaluates a
# candidate or the command line.

function __vmchan_complete_unquote
    # The token as the program will see it; an open quote is closed for the purpose.
    for close in '' "'" '"'
        if set -l value (string unescape -- "$argv[1]$close" 2>/dev/null)
            printf '%s\n' "$value"
            return
        end
    end
    printf '%s\n' "$argv[1]"
end

function __vmchan_complete
    # The words before the cursor come unquoted already (not expanded); the current token as typed.
    set -l request (commandline -opc)[2..-1]
    set -a request (__vmchan_complete_unquote (commandline -ct)[1])
    set -l lines (command vmchan complete -- $request 2>/dev/null)
    test (count $lines) -gt 0; or return
    string match -q -- ':*' "$lines[-1]"; or return
    set -e lines[-1]
    # An option's value after "=": the candidates are values, fish completes the whole token.
    set -l option (string match -r -- '^-[^=]*=' "$request[-1]")
    for line in $lines
        printf '%s%s\n' "$option" "$line"
    end
end

complete -c vmchan -e
complete -c vmchan -f -a '(__vmchan_complete)'
