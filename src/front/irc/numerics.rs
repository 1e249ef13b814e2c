//! The numeric replies classchat sends, by their RFC 1459/2812 and IRCv3 names.

/// `001`
pub const RPL_WELCOME: &str = "001";
/// `002`
pub const RPL_YOURHOST: &str = "002";
/// `003`
pub const RPL_CREATED: &str = "003";
/// `004`
pub const RPL_MYINFO: &str = "004";
/// `005`
pub const RPL_ISUPPORT: &str = "005";
/// `221`
pub const RPL_UMODEIS: &str = "221";
/// `301`
pub const RPL_AWAY: &str = "301";
/// `303`
pub const RPL_ISON: &str = "303";
/// `305`
pub const RPL_UNAWAY: &str = "305";
/// `306`
pub const RPL_NOWAWAY: &str = "306";
/// `311`
pub const RPL_WHOISUSER: &str = "311";
/// `312`
pub const RPL_WHOISSERVER: &str = "312";
/// `315`
pub const RPL_ENDOFWHO: &str = "315";
/// `318`
pub const RPL_ENDOFWHOIS: &str = "318";
/// `321`
pub const RPL_LISTSTART: &str = "321";
/// `322`
pub const RPL_LIST: &str = "322";
/// `323`
pub const RPL_LISTEND: &str = "323";
/// `324`
pub const RPL_CHANNELMODEIS: &str = "324";
/// `331`
pub const RPL_NOTOPIC: &str = "331";
/// `347`
pub const RPL_ENDOFINVITELIST: &str = "347";
/// `349`
pub const RPL_ENDOFEXCEPTLIST: &str = "349";
/// `352`
pub const RPL_WHOREPLY: &str = "352";
/// `353`
pub const RPL_NAMREPLY: &str = "353";
/// `366`
pub const RPL_ENDOFNAMES: &str = "366";
/// `368`
pub const RPL_ENDOFBANLIST: &str = "368";
/// `372`
pub const RPL_MOTD: &str = "372";
/// `375`
pub const RPL_MOTDSTART: &str = "375";
/// `376`
pub const RPL_ENDOFMOTD: &str = "376";
/// `401`
pub const ERR_NOSUCHNICK: &str = "401";
/// `404`
pub const ERR_CANNOTSENDTOCHAN: &str = "404";
/// `405`
pub const ERR_TOOMANYCHANNELS: &str = "405";
/// `410`
pub const ERR_INVALIDCAPCMD: &str = "410";
/// `411`
pub const ERR_NORECIPIENT: &str = "411";
/// `412`
pub const ERR_NOTEXTTOSEND: &str = "412";
/// `417`
pub const ERR_INPUTTOOLONG: &str = "417";
/// `421`
pub const ERR_UNKNOWNCOMMAND: &str = "421";
/// `431`
pub const ERR_NONICKNAMEGIVEN: &str = "431";
/// `432`
pub const ERR_ERRONEUSNICKNAME: &str = "432";
/// `433`
pub const ERR_NICKNAMEINUSE: &str = "433";
/// `442`
pub const ERR_NOTONCHANNEL: &str = "442";
/// `451`
pub const ERR_NOTREGISTERED: &str = "451";
/// `461`
pub const ERR_NEEDMOREPARAMS: &str = "461";
/// `462`
pub const ERR_ALREADYREGISTERED: &str = "462";
/// `464`
pub const ERR_PASSWDMISMATCH: &str = "464";
/// `479`: not in RFC 2812, but what ergo, InspIRCd and others send.
pub const ERR_BADCHANNAME: &str = "479";
/// `481`
pub const ERR_NOPRIVILEGES: &str = "481";
/// `482`
pub const ERR_CHANOPRIVSNEEDED: &str = "482";
/// `502`
pub const ERR_USERSDONTMATCH: &str = "502";
/// `900`: logged in to an account (SASL).
pub const RPL_LOGGEDIN: &str = "900";
/// `903`
pub const RPL_SASLSUCCESS: &str = "903";
/// `904`
pub const ERR_SASLFAIL: &str = "904";
/// `906`
pub const ERR_SASLABORTED: &str = "906";
/// `907`
pub const ERR_SASLALREADY: &str = "907";
/// `908`
pub const RPL_SASLMECHS: &str = "908";
